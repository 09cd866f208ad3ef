"""A real PostgreSQL server for the PostgreSQL tests (see tests/pg.py), skipped with the
reason when PostgreSQL or psycopg is not installed."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from pg import PostgresServer, missing_reason, postgres_server

_names = itertools.count(1)


def _skip_without_postgres() -> None:
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed: pip install -e '.[dev]'")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One cluster for the session; tests that stop it start their own (``own_pg``)."""
    _skip_without_postgres()
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A fresh, empty database on the session's cluster."""
    import psycopg

    name = f"t{next(_names)}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg_server.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def own_pg() -> Iterator[PostgresServer]:
    """A cluster of this test's own, which it may stop and start."""
    _skip_without_postgres()
    with postgres_server() as server:
        yield server
