"""The dashboard's views on PostgreSQL: the SQLite queries of ``_summary`` and
``_timeline``, run as they are on the same tables through :class:`SqliteSpelling`.

One set of queries serves both backends, so a view answers the same for the same events
on either. The queries use a few SQLite spellings; each has a PostgreSQL twin here, and
a query with a spelling this module does not know fails at once instead of answering
something else.

Event time: SQLite selects raw rows by ``julianday(timestamp)``. The PostgreSQL store
keeps that value in the ``jd`` column, computed at insert by SQLite's own ``julianday()``
(``event_days``), so both read every timestamp, odd ones included, alike.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any, Final, cast

import psycopg

from peekapi_otel.server._query import Query
from peekapi_otel.server._rollup import UNMATCHED_SQL
from peekapi_otel.server._summary import consumer_view, endpoint_view, summarize

_SPELLINGS: Final = (
    # strftime('%s') is the whole seconds of SQLite's millisecond count, which ``jd``
    # (a day count) holds exactly: milliseconds since noon, 4714 BC, minus the epoch's.
    (
        "CAST(strftime('%s', timestamp) AS INTEGER)",
        "(round(jd * 86400000)::bigint / 1000 - 210866760000)",
    ),
    ("julianday(timestamp)", "jd"),
    ("instr(", "strpos("),
)
_SQLITE_ONLY: Final = ("julianday(", "strftime(", "instr(", "WITHOUT ROWID")


def to_postgres(sql: str) -> str:
    """``sql`` written for SQLite, in PostgreSQL's spelling (``?`` becomes ``%s``)."""
    for sqlite, postgres in _SPELLINGS:
        sql = sql.replace(sqlite, postgres)
    unknown = [word for word in _SQLITE_ONLY if word in sql]
    if unknown:
        raise ValueError(f"no PostgreSQL spelling for {unknown[0]!r} in: {sql[:200]}")
    return sql.replace("%", "%%").replace("?", "%s")


UNMATCHED_PG: Final = to_postgres(UNMATCHED_SQL).replace("%%", "%")
"""The unmatched-request condition, for the partial index that serves it."""


class SqliteSpelling:
    """The ``execute`` of a ``sqlite3.Connection``, on a PostgreSQL connection."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self._conn.execute(to_postgres(sql), list(params))


def _raw_since(conn: psycopg.Connection[Any]) -> float | None:
    row = conn.execute("SELECT value FROM counters WHERE name = 'raw_since'").fetchone()
    return None if row is None else float(row[0])


def view(conn: psycopg.Connection[Any], name: str, query: Query, *, latest: int) -> dict[str, Any]:
    """The ``summary``, ``endpoint`` or ``consumer`` view, from one snapshot of ``conn``."""
    with conn.transaction():
        # Every figure of a view from one snapshot, as SQLite's read transaction gives.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        lite = cast("sqlite3.Connection", SqliteSpelling(conn))
        raw_since = _raw_since(conn)
        if name == "summary":
            # No per-second ring: on a fleet a node's memory holds its own events only.
            return summarize(lite, query, latest=latest, raw_since=raw_since, ring=None)
        if name == "endpoint":
            return endpoint_view(lite, query, raw_since=raw_since)
        return consumer_view(lite, query, raw_since=raw_since)


class EventDays:
    """SQLite's ``julianday()`` of event timestamps, for the ``jd`` column."""

    def __init__(self) -> None:
        self._conn = sqlite3.connect(":memory:", check_same_thread=False)

    def __call__(self, timestamps: Sequence[str]) -> list[float | None]:
        rows = self._conn.execute(
            "SELECT julianday(value) FROM json_each(?) ORDER BY key",
            (json.dumps(list(timestamps)),),
        ).fetchall()
        return [row[0] for row in rows]

    def close(self) -> None:
        self._conn.close()
