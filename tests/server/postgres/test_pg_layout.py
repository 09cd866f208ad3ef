"""A database written by the previous PostgreSQL rollup layout (no 6-hour level, sketches
as JSON buckets without status classes, no consumer sketches) is migrated once when a
node opens it, and then answers as a SQLite database of the previous layout migrated by
the SQLite store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg

from peekapi_otel.server._query import from_query_string
from peekapi_otel.server._sketch import latencies, parse
from peekapi_otel.server._store import EventStore, validate_batch
from peekapi_otel.server.db._pg_store import PgEventStore
from server.postgres.test_pg_views import BASE, NOW, _assert_same, _rollups, event
from server.test_rollups import _as_previous_layout


def _as_previous_pg_layout(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("DROP TABLE rollup_consumer_sketches")
        conn.execute("DELETE FROM rollup_endpoints WHERE res = 21600")
        rows = conn.execute("SELECT res, start, method, route, hist FROM rollup_endpoints")
        plain = []
        for res, start, method, route, hist in rows.fetchall():
            run = latencies(parse(hist)) or [0]
            buckets = {str(run[0] + i): n for i, n in enumerate(run[1:]) if n}
            plain.append((json.dumps(buckets), res, start, method, route))
        conn.execute("ALTER TABLE rollup_endpoints ALTER COLUMN hist TYPE jsonb USING '{}'")
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE rollup_endpoints SET hist = %s::jsonb "
                "WHERE res = %s AND start = %s AND method = %s AND route = %s",
                plain,
            )
        conn.execute("DELETE FROM counters WHERE name = 'rollup_version'")


def _snapshot(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        return _rollups(conn)


def test_the_previous_layout_is_rebuilt_from_its_raw_events(pg_url: str, tmp_path: Path) -> None:
    rows = validate_batch([event(i) for i in range(2500)])
    old, lite = PgEventStore(pg_url), EventStore(tmp_path / "events.db")
    try:
        old.insert_rows(rows)
        lite.insert_rows(rows)
        fresh = _snapshot(pg_url)
        old.close()
        _as_previous_pg_layout(pg_url)
        again = PgEventStore(pg_url)
        try:
            # The same rows, sketches bucket by bucket, as if written by this layout.
            assert _snapshot(pg_url) == fresh
            assert _assert_same(again, lite) > 300
        finally:
            again.close()
    finally:
        lite.close()


def test_the_previous_layout_after_retention_keeps_every_count(pg_url: str, tmp_path: Path) -> None:
    rows = validate_batch([event(i) for i in range(3000)])
    db = tmp_path / "events.db"
    old, lite = PgEventStore(pg_url), EventStore(db)
    old.insert_rows(rows)
    lite.insert_rows(rows)
    cutoff = BASE + 3 * 3600
    assert old.drop_raw_before(cutoff) == lite.drop_raw_before(cutoff) > 0
    old.close()
    lite.close()
    _as_previous_pg_layout(pg_url)
    _as_previous_layout(db)
    pg, lite = PgEventStore(pg_url), EventStore(db)
    try:
        migrated = _snapshot(pg_url)
        later = validate_batch(
            [
                event(i) | {"metadata": None, "timestamp": f"2025-12-03T11:{i % 60:02}:00Z"}
                for i in range(3000, 3600)
            ]
        )
        for batch in (later[:300], later[300:]):
            assert pg.insert_rows(batch) == lite.insert_rows(batch)
        assert _assert_same(pg, lite) > 300
        week = pg.summary(from_query_string("range=7d&status=5xx", now=NOW))["totals"]
        # Periods written before have no class in their sketches: no percentile rather
        # than a wrong one.
        assert week["requests"] > 0
        assert week["p95_ms"] is None
    finally:
        pg.close()
        lite.close()
    before = _snapshot(pg_url)
    assert before != migrated  # the later events were added
    PgEventStore(pg_url).close()  # migrated once: opening again changes nothing
    assert _snapshot(pg_url) == before
