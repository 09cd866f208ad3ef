"""The PostgreSQL event store against a real server: the SQLite store's rows, the same
de-duplication and duplicate count, the SDK fixtures, values it can never store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from peekapi_otel.server._store import EventStore, validate_batch
from peekapi_otel.server.db._backend import StoreUnavailable
from peekapi_otel.server.db._pg_store import PgEventStore, describe

#: One real batch of each official PeekAPI SDK.
FIXTURES = Path(__file__).parents[2] / "cli" / "fixtures"


def event(i: int, *, trace: str | None = "t", status: int = 200) -> dict[str, Any]:
    return {
        "method": "GET",
        "path": f"/items/{{id}}/{i % 3}",
        "status_code": status,
        "response_time_ms": 1.5 + i,
        "request_size": i,
        "response_size": 10 * i,
        "consumer_id": None if i % 2 else f"c{i}",
        "metadata": None
        if trace is None
        else {"trace_id": f"{trace}{i:031x}", "span_id": f"{i:016x}"},
        "timestamp": f"2026-12-03T08:00:{i % 60:02d}+00:00",
    }


def _rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT method, path, status_code, response_time_ms, request_size, response_size,"
            " consumer_id, metadata, timestamp, trace_id, span_id FROM events ORDER BY id"
        ).fetchall()


def _sqlite_rows(path: Path) -> list[tuple[Any, ...]]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT method, path, status_code, response_time_ms, request_size, response_size,"
            " consumer_id, metadata, timestamp, trace_id, span_id FROM events ORDER BY id"
        ).fetchall()


@pytest.fixture
def store(pg_url: str) -> PgEventStore:
    return PgEventStore(pg_url)


def test_rows_are_those_of_the_sqlite_store(pg_url: str, tmp_path: Path) -> None:
    batch = [event(i) for i in range(5)] + [event(9, trace=None)]
    pg = PgEventStore(pg_url)
    lite = EventStore(tmp_path / "events.db")
    try:
        assert pg.insert_rows(validate_batch(batch)) == (6, 0)
        assert lite.insert_rows(validate_batch(batch)) == (6, 0)
    finally:
        pg.close()
        lite.close()
    assert _rows(pg_url) == _sqlite_rows(tmp_path / "events.db")


def test_duplicates_are_skipped_and_counted(store: PgEventStore) -> None:
    first = [event(i) for i in range(10)]
    assert store.insert_rows(validate_batch(first)) == (10, 0)
    # Half already stored, one repeated within the batch, two without ids (always kept).
    second = [event(i) for i in range(5, 15)] + [event(14)] + [event(20, trace=None)] * 2
    assert store.insert_rows(validate_batch(second)) == (7, 6)
    assert store.count() == 17
    assert store.duplicates() == 6
    pairs = store.pairs()
    assert len(pairs) == len(set(pairs)) == 15
    store.close()


def test_duplicates_are_counted_across_stores_of_one_database(pg_url: str) -> None:
    one, two = PgEventStore(pg_url), PgEventStore(pg_url)
    try:
        batch = validate_batch([event(i) for i in range(4)])
        assert one.insert_rows(batch) == (4, 0)
        assert two.insert_rows(batch) == (0, 4)
        assert one.duplicates() == two.duplicates() == 4
    finally:
        one.close()
        two.close()


def test_an_empty_batch_is_nothing(store: PgEventStore) -> None:
    assert store.insert_rows([]) == (0, 0)
    assert store.count() == 0
    assert store.duplicates() == 0


# A size of 2**63 or more never gets here: the schema refuses it (``validate_batch``).
@pytest.mark.parametrize(("field", "value"), [("status_code", 2**40), ("path", "/nul\x00byte")])
def test_a_value_postgresql_cannot_store_is_a_value_error(
    store: PgEventStore, field: str, value: object
) -> None:
    bad = event(1)
    bad[field] = value
    rows = validate_batch([event(0), bad])
    # A ValueError: the ingest answers 400, since a retry would fail alike.
    with pytest.raises(ValueError, match=r"(?i)range|nul|0x00"):
        store.insert_rows(rows)
    assert store.count() == 0  # nothing of the batch is stored
    assert store.insert_rows(validate_batch([event(0)])) == (1, 0)  # and the store goes on


def test_two_stores_create_the_schema_at_once(pg_url: str) -> None:
    import threading

    made: list[PgEventStore] = []
    errors: list[psycopg.Error] = []

    def make() -> None:
        try:
            made.append(PgEventStore(pg_url))
        except psycopg.Error as exc:
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    for s in made:
        s.close()


def test_the_summary_totals(store: PgEventStore) -> None:
    store.insert_rows(validate_batch([event(i, status=500 if i < 2 else 200) for i in range(10)]))
    totals = store.summary()["totals"]
    assert totals["requests"] == 10
    assert totals["server_errors"] == totals["errors"] == 2
    assert totals["error_rate"] == 20.0
    assert totals["consumers"] == 5


def test_the_description_never_shows_the_password() -> None:
    assert describe("postgresql://me:s3cret@db.example:6543/events") == "me@db.example:6543/events"
    assert "s3cret" not in describe("host=h password=s3cret dbname=d")


@pytest.mark.parametrize(
    "name", ["peekapi-python-0.1.0-batch.json", "peekapi-sdk-node-0.1.0-batch.json"]
)
def test_the_sdk_fixtures_are_stored_like_in_sqlite(name: str, pg_url: str, tmp_path: Path) -> None:
    body = json.loads((FIXTURES / name).read_text())["body"]
    rows = validate_batch(body)
    pg = PgEventStore(pg_url)
    lite = EventStore(tmp_path / "events.db")
    try:
        assert pg.insert_rows(rows) == lite.insert_rows(rows) == (len(body), 0)
    finally:
        pg.close()
        lite.close()
    assert _rows(pg_url) == _sqlite_rows(tmp_path / "events.db")


def test_tables_that_cannot_be_created_are_a_clear_error(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE ROLE reader LOGIN")
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    url = pg_url.replace("peekapi@", "reader@")
    with pytest.raises(StoreUnavailable, match=r"cannot create the event tables in reader@"):
        PgEventStore(url)


def test_a_database_that_stops_answering_turns_requests_away(pg_url: str) -> None:
    import os
    import signal
    import threading

    store = PgEventStore(pg_url, queue_wait=1.0)
    with psycopg.connect(pg_url) as conn:
        backend = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'peekapi-otel serve'"
            " AND datname = current_database()"
        ).fetchone()
    assert backend is not None
    first: list[tuple[int, int]] = []
    blocked = threading.Thread(
        target=lambda: first.append(store.insert_rows(validate_batch([event(1)])))
    )
    os.kill(backend[0], signal.SIGSTOP)  # the store's server process freezes
    try:
        blocked.start()
        blocked.join(0.5)
        assert blocked.is_alive()  # its batch waits for the frozen server
        # The next request does not queue behind it for ever: 503, and sent again later.
        with pytest.raises(StoreUnavailable, match="not answering"):
            store.insert_rows(validate_batch([event(2)]))
    finally:
        os.kill(backend[0], signal.SIGCONT)
    blocked.join(30)
    assert first == [(1, 0)]
    assert store.insert_rows(validate_batch([event(2)])) == (1, 0)
    assert store.count() == 2
    store.close()
