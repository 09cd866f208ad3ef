"""The dashboard on PostgreSQL answers as on SQLite: the same events stored in both
backends give the same JSON for every view, range and filter, also when several nodes
write at once and after the retention deleted raw rows.

Latencies are multiples of 1/8 ms, so every latency sum is exact whatever order the
rows are added in (several nodes add in an order of their own).
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from peekapi_otel.server._query import Query, from_query_string
from peekapi_otel.server._rollup import CONSUMER_LEVELS, RESOLUTIONS
from peekapi_otel.server._sketch import parse
from peekapi_otel.server._store import EventStore, validate_batch
from peekapi_otel.server.db._pg_store import PgEventStore

#: 2025-12-03T12:00:00Z, "now" for every range; the events are from the hours before.
#: Over a day in the past, so that the end of every range (all stored time ends a day
#: after now) is before the real clock, which the per-second chart also reads.
NOW = 1764763200
BASE = NOW - 7 * 3600
METHODS = ("GET", "POST", "DELETE")
PATHS = ("/items/{id}", "/users/{user_id}/orders", "/health", "/a", "/b", "/wp-login.php")


def _timestamp(i: int) -> str:
    import datetime

    second = BASE + (i * 37) % (6 * 3600) + (i % 3) * 0.25
    moment = datetime.datetime.fromtimestamp(second, datetime.timezone.utc)
    # The spellings of one instant a client may send, and a few no parser reads.
    spelling = i % 23
    if spelling == 0:
        return moment.isoformat()
    if spelling == 1:
        return moment.astimezone(datetime.timezone(datetime.timedelta(hours=2))).isoformat()
    if spelling == 2:
        return moment.replace(tzinfo=None).isoformat(sep=" ")
    if spelling == 3 and i % 2:
        return "yesterday"
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def event(i: int) -> dict[str, Any]:
    path = PATHS[i % len(PATHS)]
    status = (200, 201, 204, 302, 400, 404, 500, 503)[(i * 7) % 8]
    if path in ("/a", "/b", "/wp-login.php"):
        status = 404 if i % 5 else 405  # unmatched requests
    return {
        "method": METHODS[i % 3] if i % 11 else "PATCH",
        "path": path,
        "status_code": status,
        "response_time_ms": 0.125 * ((i * 13) % 4000),
        "request_size": i % 100,
        "response_size": (i * 3) % 1000,
        "consumer_id": None if i % 4 == 0 else ("" if i % 29 == 0 else f"hash_{i % 9:012x}"),
        "metadata": {"trace_id": f"{i:032x}", "span_id": f"{i:016x}"},
        "timestamp": _timestamp(i),
    }


def _unreadable(n: int) -> int:
    return sum(_timestamp(i) == "yesterday" for i in range(n))


def _queries() -> list[Query]:
    ranges = ["", "range=15m", "range=1h", "range=24h", "range=7d"]
    ranges += ["from=2025-12-03T06:10:00Z&to=2025-12-03T06:40:00Z", f"from={BASE}&to={NOW}"]
    filters = ["", "method=GET", "status=4xx", "status=5xx", "consumer=hash_000000000003"]
    filters += ["consumer=(anonymous)", "method=GET&path=/a", "path=unmatched (404)"]
    return [
        from_query_string("&".join(p for p in (r, f) if p), now=NOW)
        for r, f in itertools.product(ranges, filters)
    ]


def _views(store: Any, query: Query) -> dict[str, Any]:
    summary = store.summary(query)
    summary.pop("generated_at")
    out = {"summary": summary}
    for e in summary["endpoints"][:6]:
        one = Query(query.start, query.end, query.name, _with(query, e["method"], e["path"]))
        out[f"endpoint {e['method']} {e['path']}"] = store.endpoint_view(one)
    for c in summary["consumers"][:4]:
        consumer = "" if c["consumer_id"] is None else c["consumer_id"]
        one = Query(query.start, query.end, query.name, _with(query, consumer=consumer))
        out[f"consumer {c['consumer_id']}"] = store.consumer_view(one)
    return out


def _with(query: Query, method: str | None = None, path: str | None = None, **kw: Any) -> Any:
    import dataclasses

    if method is not None:
        kw.update(method=method, path=path)
    return dataclasses.replace(query.filters, **kw)


def _assert_same(pg: PgEventStore, lite: EventStore) -> int:
    compared = 0
    for query in _queries():
        expected, got = _views(lite, query), _views(pg, query)
        assert got.keys() == expected.keys(), query
        for name, view in expected.items():
            assert got[name] == view, (query, name)
            compared += 1
    return compared


@pytest.fixture
def stores(pg_url: str, tmp_path: Path) -> Any:
    pg, lite = PgEventStore(pg_url), EventStore(tmp_path / "events.db")
    try:
        yield pg, lite
    finally:
        pg.close()
        lite.close()


def test_every_view_answers_as_on_sqlite(stores: tuple[PgEventStore, EventStore]) -> None:
    pg, lite = stores
    # Over 5,000 events in most ranges: their latencies come from the sketches; the
    # narrow ones have fewer, counted exactly from the raw rows.
    rows = validate_batch([event(i) for i in range(7000)])
    rows += validate_batch([event(i) for i in range(100)])  # sent again: duplicates
    for start in range(0, len(rows), 250):
        batch = rows[start : start + 250]
        assert pg.insert_rows(batch) == lite.insert_rows(batch)
    assert (pg.count(), pg.duplicates()) == (lite.count(), lite.duplicates()) == (7000, 100)
    summary = pg.summary(from_query_string("", now=NOW))
    # Events whose timestamp no parser reads count when they arrived: today, after NOW.
    assert summary["totals"]["requests"] == 7000 - _unreadable(7000)
    assert any(e["unmatched"] for e in summary["endpoints"])
    assert _assert_same(pg, lite) > 300


def test_nodes_writing_at_once_add_up_to_one_store(
    pg_url: str, stores: tuple[PgEventStore, EventStore], tmp_path: Path
) -> None:
    """Three nodes add to the same minutes, hours and days at once: every count and
    sketch bucket is the sum of theirs, and none waits on another forever."""
    pg, lite = stores
    rows = validate_batch([event(i) for i in range(6000)])
    lite.insert_rows(rows)
    nodes = [pg, PgEventStore(pg_url), PgEventStore(pg_url)]
    errors: list[BaseException] = []

    def write(node: PgEventStore, mine: list[tuple[Any, ...]]) -> None:
        try:
            for start in range(0, len(mine), 100):
                node.insert_rows(mine[start : start + 100])
        except Exception as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(node, rows[i::3])) for i, node in enumerate(nodes)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    finally:
        for node in nodes[1:]:
            node.close()
    assert not errors
    assert pg.count() == 6000
    with psycopg.connect(pg_url) as conn:
        for table, levels in (
            ("rollup_endpoints", RESOLUTIONS),
            ("rollup_consumers", CONSUMER_LEVELS),
        ):
            sums = conn.execute(f"SELECT res, SUM(n) FROM {table} GROUP BY res ORDER BY res")
            assert sums.fetchall() == [(res, 6000) for res in levels]
        pg_rollups = _rollups(conn)
    # Every row of every rollup table, each sketch bucket by bucket, as the one writer of
    # the SQLite file counted them (its held-back sketches written by a consumer's view).
    lite.summary(from_query_string("consumer=hash_000000000003", now=NOW))
    with sqlite3.connect(tmp_path / "events.db") as conn:
        assert pg_rollups == _rollups(conn)
    assert _assert_same(pg, lite) > 300


def _rollups(conn: Any) -> dict[str, dict[tuple[Any, ...], Any]]:
    """Each rollup table's rows by key: counts and the bucket counts of the sketch."""
    out: dict[str, dict[tuple[Any, ...], Any]] = {}
    for table, keys in (
        ("rollup_endpoints", 4),
        ("rollup_consumers", 5),
        ("rollup_consumer_sketches", 5),
    ):
        rows = conn.execute(f"SELECT * FROM {table}").fetchall()
        out[table] = {tuple(r[:keys]): _comparable(r[keys:], table) for r in rows}
    return out


def _comparable(values: Any, table: str) -> Any:
    if table == "rollup_consumers":
        return tuple(values)
    sketch = parse(values[-1])
    buckets = {(c, run[0] + i): n for c, run in sketch.items() for i, n in enumerate(run[1:]) if n}
    return (*values[:-1], buckets)


def test_retention_keeps_the_same_figures(stores: tuple[PgEventStore, EventStore]) -> None:
    pg, lite = stores
    rows = validate_batch([event(i) for i in range(3000)])
    pg.insert_rows(rows)
    lite.insert_rows(rows)
    cutoff = BASE + 3 * 3600
    dropped = pg.drop_raw_before(cutoff, chunk=700)
    assert dropped == lite.drop_raw_before(cutoff, chunk=700)
    assert 0 < dropped < 3000
    assert pg.count() == lite.count() == 3000 - dropped
    summary = pg.summary(from_query_string("", now=NOW))
    # The rollups still count them all.
    assert summary["totals"]["requests"] == 3000 - _unreadable(3000)
    assert _assert_same(pg, lite) > 300


def test_a_database_from_before_the_rollups_gets_them(
    pg_url: str, stores: tuple[PgEventStore, EventStore]
) -> None:
    pg, lite = stores
    rows = validate_batch([event(i) for i in range(2500)])
    pg.insert_rows(rows)
    lite.insert_rows(rows)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE rollup_endpoints, rollup_consumers")
        conn.execute("ALTER TABLE events DROP COLUMN jd")
    again = PgEventStore(pg_url)
    try:
        assert _assert_same(again, lite) > 300
    finally:
        again.close()
