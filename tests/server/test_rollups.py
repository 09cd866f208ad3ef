"""Rollups: what the dashboard reads instead of raw rows, their accuracy, retention,
de-duplication, ranges and filters (a real store in a temporary SQLite file)."""

from __future__ import annotations

import itertools
import json
import random
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from peekapi_otel.server import _store
from peekapi_otel.server._query import parse_query
from peekapi_otel.server._rollup import pieces
from peekapi_otel.server._sketch import (
    CLASS_KEY,
    RELATIVE_ERROR,
    Sketch,
    add_counts,
    dump,
    latencies,
    merge_sketch,
    parse,
)
from peekapi_otel.server._sketch_writer import WATERMARKS
from peekapi_otel.server._store import EventStore
from peekapi_otel.server._summary import EXACT_LIMIT

T0 = 1_795_996_800  # midnight UTC, 2026-11-30
NOW = T0 + 7 * 86400


def _iso(second: float) -> str:
    return datetime.fromtimestamp(second, timezone.utc).isoformat()


def event(
    n: int,
    at: float,
    *,
    method: str = "GET",
    path: str = "/items/{id}",
    status: int = 200,
    ms: float = 10.0,
    consumer: str | None = None,
) -> dict[str, Any]:
    return {
        "method": method,
        "path": path,
        "status_code": status,
        "response_time_ms": ms,
        "request_size": 0,
        "response_size": 1,
        "consumer_id": consumer,
        "metadata": {"trace_id": f"{n:032x}", "span_id": f"{n:016x}"},
        "timestamp": _iso(at),
    }


def _rank(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    return ordered[max(0, (percent * len(ordered) + 99) // 100 - 1)]


def test_pieces_cover_a_range_with_the_fewest_aligned_periods() -> None:
    start, end = T0 + 3600 + 120, T0 + 3 * 86400 + 7200 + 300
    runs = pieces(start, end)
    covered = sorted((a, b) for _, a, b in runs)
    assert covered[0][0] == start
    assert covered[-1][1] == end
    assert all(b1 == a2 for (_, b1), (a2, _) in itertools.pairwise(covered))
    assert {res for res, _, _ in runs} == {60, 3600, 21600, 86400}
    assert len(runs) <= 7


def test_percentiles_from_sketches_are_within_one_percent(tmp_path: Path) -> None:
    rng = random.Random(7)
    store = EventStore(tmp_path / "e.db")
    events, times = [], {"/a": [], "/b": []}  # type: ignore[var-annotated]
    for n in range(EXACT_LIMIT + 5000):  # more than the exact path reads from raw rows
        path = "/a" if n % 3 else "/b"
        ms = rng.lognormvariate(3.0 if path == "/a" else 1.0, 0.8)
        times[path].append(ms)
        events.append(event(n, T0 + n % 86400, path=path, ms=ms))
    for i in range(0, len(events), 500):
        store.insert_many(events[i : i + 500])
    summary = store.summary(parse_query({}, now=NOW))
    rows = {e["path"]: e for e in summary["endpoints"]}
    everything = times["/a"] + times["/b"]
    for p in (50, 95, 99):
        for path, values in times.items():
            true = _rank(values, p)
            assert abs(rows[path][f"p{p}_ms"] - true) <= RELATIVE_ERROR * true + 0.01
        true = _rank(everything, p)
        assert abs(summary["totals"][f"p{p}_ms"] - true) <= RELATIVE_ERROR * true + 0.01
    assert rows["/a"]["requests"] == len(times["/a"])
    assert abs(rows["/a"]["avg_ms"] - sum(times["/a"]) / len(times["/a"])) < 0.01
    store.close()


def test_small_ranges_are_exact(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db")
    store.insert_many([event(n, T0 + n, ms=float(n + 1)) for n in range(100)])
    totals = store.summary(parse_query({}, now=NOW))["totals"]
    assert (totals["p50_ms"], totals["p95_ms"], totals["p99_ms"]) == (50.0, 95.0, 99.0)
    store.close()


def test_duplicates_are_counted_once_in_the_rollups(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db")
    batch = [event(n, T0 + n) for n in range(10)]
    assert store.insert_many(batch) == (10, 0)
    assert store.insert_many([*batch[5:], event(99, T0)]) == (1, 5)
    assert store.summary(parse_query({}, now=NOW))["totals"]["requests"] == 11
    store.close()


def test_retention_drops_raw_rows_and_keeps_the_rollups(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db")
    old = [event(n, T0 + n, status=500 if n % 4 == 0 else 200) for n in range(40)]
    new = [event(100 + n, NOW - 60 + n) for n in range(10)]
    store.insert_many(old + new)
    assert store.drop_raw_before(NOW - 86400, chunk=7) == 40
    assert store.count() == 10
    summary = store.summary(parse_query({}, now=NOW))
    assert summary["totals"]["requests"] == 50
    assert summary["totals"]["server_errors"] == 10
    assert len(summary["latest"]) == 10  # raw rows are what is left
    # The old range is answered from the rollups alone (its raw rows are gone).
    old_range = store.summary(parse_query({"from": str(T0), "to": str(T0 + 3600)}, now=NOW))
    assert old_range["totals"]["requests"] == 40
    assert old_range["totals"]["p95_ms"] is not None
    store.close()


def test_rollups_are_built_for_a_database_from_before_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "e.db"
    store = EventStore(db)
    store.insert_many([event(n, T0 + n * 61, ms=float(n)) for n in range(30)])
    store.close()
    with sqlite3.connect(db) as conn:  # as an earlier version left it: no rollups
        conn.executescript(
            "DROP TABLE rollup_endpoints; DROP TABLE rollup_consumers; DELETE FROM counters;"
        )
    monkeypatch.setattr(_store, "_BACKFILL_CHUNK", 7)  # several chunks, one transaction each
    reopened = EventStore(db, create=False)
    totals = reopened.summary(parse_query({}, now=NOW))["totals"]
    assert (totals["requests"], totals["p95_ms"]) == (30, 28.0)
    reopened.close()
    with sqlite3.connect(db) as conn:
        done = conn.execute("SELECT value FROM counters WHERE name = 'rollup_backfill'")
        assert done.fetchone() == (-1,)


def test_a_backfill_cut_short_resumes(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    store = EventStore(db)
    store.insert_many([event(n, T0 + n * 61) for n in range(30)])
    store.close()
    with sqlite3.connect(db) as conn:
        # What a crash after the chunk that counted ids 1..20 leaves behind.
        conn.execute("DELETE FROM rollup_endpoints")
        conn.execute("DELETE FROM rollup_consumers")
        conn.execute("INSERT OR REPLACE INTO counters VALUES ('rollup_backfill', 20)")
    reopened = EventStore(db)
    assert reopened.summary(parse_query({}, now=NOW))["totals"]["requests"] == 10
    reopened.close()


def test_ranges_and_filters(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db")
    events = [
        event(1, NOW - 300, consumer="alice"),
        event(2, NOW - 200, consumer="alice", status=503, path="/orders", method="POST"),
        event(3, NOW - 100, consumer="bob"),
        event(4, NOW - 7200, consumer="bob", status=404, path="/nope"),
        event(5, NOW - 3 * 86400),
    ]
    store.insert_many(events)

    def totals(**params: str) -> dict[str, Any]:
        result: dict[str, Any] = store.summary(parse_query(params, now=NOW))["totals"]
        return result

    assert totals()["requests"] == 5
    assert totals(range="15m")["requests"] == 3
    assert totals(range="24h")["requests"] == 4
    assert totals(range="7d")["requests"] == 5
    assert totals(range="24h", consumer="alice")["requests"] == 2
    assert totals(range="24h", status="5xx")["requests"] == 1
    assert totals(consumer="(anonymous)")["requests"] == 1
    assert totals(method="POST", path="/orders")["server_errors"] == 1
    assert totals(path="unmatched (404)")["requests"] == 1
    summary = store.summary(parse_query({"range": "15m", "consumer": "alice"}, now=NOW))
    assert [e["path"] for e in summary["latest"]] == ["/orders", "/items/{id}"]
    assert summary["range"]["filters"]["consumer"] == "alice"
    assert sum(p["requests"] for p in summary["series"]) == 2
    store.close()


def test_endpoint_and_consumer_views(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db")
    batch = [
        event(
            n,
            NOW - 1800 + n * 10,
            consumer=("alice", "bob", "carol")[n % 3] if n < 30 else None,
            status=500 if n % 5 == 0 else 200,
            ms=float(n),
        )
        for n in range(40)
    ]
    store.insert_many(batch)
    view = store.endpoint_view(
        parse_query({"range": "1h", "method": "GET", "path": "/items/{id}"}, now=NOW)
    )
    assert view["totals"]["requests"] == 40
    assert sum(p["requests"] for p in view["series"]) == 40
    assert sum(p["statuses"]["5xx"] for p in view["series"]) == 8
    busiest = [p for p in view["series"] if p["requests"]]
    assert all(p["p95_ms"] is not None and p["p50_ms"] <= p["p99_ms"] for p in busiest)
    top = {c["consumer_id"]: (c["requests"], c["errors"]) for c in view["top_consumers"]}
    assert top == {"alice": (10, 2), "bob": (10, 2), "carol": (10, 2), None: (10, 2)}

    alice = store.consumer_view(parse_query({"range": "1h", "consumer": "alice"}, now=NOW))
    assert alice["requests"] == 10
    assert alice["errors"] == sum(1 for n in range(0, 30, 3) if n % 5 == 0)
    assert alice["endpoints"][0]["path"] == "/items/{id}"
    assert alice["first_seen"] == (NOW - 1800) // 60 * 60
    assert alice["last_seen"] == (NOW - 1800 + 27 * 10) // 60 * 60 + 59
    assert sum(p["server_errors"] for p in alice["series"]) == alice["errors"]
    store.close()


def test_a_dense_minute_read_back_gets_its_average_rate(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "e.db")
    burst = [event(n, T0 + 30 + n % 10, consumer="a" if n % 2 else None) for n in range(6000)]
    for i in range(0, len(burst), 1000):
        store.insert_many(burst[i : i + 1000])
    store.close()
    reopened = EventStore(tmp_path / "e.db")  # nothing of it in memory: read back
    summary = reopened.summary(parse_query({}, now=NOW))
    assert summary["timeline_live"] is False
    assert {p["requests"] for p in summary["timeline"] if p["second"] >= T0} == {100}
    mine = reopened.summary(parse_query({"consumer": "a"}, now=NOW))
    assert {p["requests"] for p in mine["timeline"] if p["second"] >= T0} == {50}
    reopened.close()


def _within(value: float | None, true: float) -> bool:
    return value is not None and abs(value - true) <= RELATIVE_ERROR * true + 0.01


def _mixed(count: int, seed: int) -> list[dict[str, Any]]:
    """Three days of traffic from three consumers (and anonymous), errors slower."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        status = rng.choice((200, 200, 200, 201, 404, 500, 503))
        base = {2: 2.5, 4: 1.0, 5: 4.0}[status // 100]
        out.append(
            event(
                n,
                T0 + 3600 + n * (3 * 86400 - 7200) // count,
                path=rng.choice(("/a/{id}", "/b/{id}")),
                status=status,
                ms=rng.lognormvariate(base, 0.6),
                consumer=rng.choice(("alice", "bob", "carol", None)),
            )
        )
    return out


def _check_percentiles(summary: dict[str, Any], chosen: list[dict[str, Any]]) -> None:
    times = [e["response_time_ms"] for e in chosen]
    totals = summary["totals"]
    assert totals["requests"] == len(chosen)
    for p in (50, 95, 99):
        assert _within(totals[f"p{p}_ms"], _rank(times, p)), (p, totals)
    assert _within(totals["avg_ms"], sum(times) / len(times)), totals
    for row in summary["endpoints"]:
        mine = [e["response_time_ms"] for e in chosen if e["path"] == row["path"]]
        assert row["requests"] == len(mine)
        assert _within(row["p95_ms"], _rank(mine, 95)), row


def _filtered(
    events: list[dict[str, Any]], consumer: str | None, status: str | None, start: int, end: int
) -> list[dict[str, Any]]:
    def keep(e: dict[str, Any]) -> bool:
        at = datetime.fromisoformat(e["timestamp"]).timestamp()
        if not start <= at < end:
            return False
        if consumer is not None and e["consumer_id"] != consumer:
            return False
        return status is None or str(e["status_code"])[0] == status[0]

    return [e for e in events if keep(e)]


@pytest.mark.parametrize(
    ("consumer", "status"),
    [("alice", None), (None, "5xx"), (None, "2xx"), ("bob", "4xx"), ("carol", "5xx")],
)
def test_consumer_and_status_filters_read_percentiles_within_one_percent(
    tmp_path: Path, consumer: str | None, status: str | None
) -> None:
    events = _mixed(3 * EXACT_LIMIT, seed=11)
    store = EventStore(tmp_path / "e.db")
    for i in range(0, len(events), 500):
        store.insert_many(events[i : i + 500])
    params = {k: v for k, v in (("consumer", consumer), ("status", status)) if v is not None}
    # All stored time, and a range cut mid-day (hour and 6-hour rows at both ends).
    for bounds in ({}, {"from": str(T0 + 5 * 3600), "to": str(T0 + 2 * 86400 + 19 * 3600)}):
        query = parse_query({**params, **bounds}, now=NOW)
        chosen = _filtered(events, consumer, status, query.start, query.end)
        _check_percentiles(store.summary(query), chosen)
    view = store.endpoint_view(parse_query({**params, "method": "GET", "path": "/a/{id}"}, now=NOW))
    busy = [p for p in view["series"] if p["requests"]]
    assert busy
    assert all(p["p95_ms"] is not None for p in busy)
    store.close()


def test_consumer_sketches_held_in_memory_are_counted_after_a_crash(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    events = _mixed(2 * EXACT_LIMIT, seed=5)
    first = EventStore(db)
    first.insert_many(events[:EXACT_LIMIT])
    first.summary(parse_query({"consumer": "alice"}, now=NOW))  # written up to here
    first.insert_many(events[EXACT_LIMIT:])  # held in memory, then the process dies
    reopened = EventStore(db)
    query = parse_query({"consumer": "alice"}, now=NOW)
    chosen = _filtered(events, "alice", None, query.start, query.end)
    _check_percentiles(reopened.summary(query), chosen)
    reopened.close()
    again = EventStore(db)  # nothing is counted twice
    _check_percentiles(again.summary(query), chosen)
    again.close()
    first.close()


def _as_previous_layout(db: Path) -> None:
    """Turn a database into what the previous rollup layout left: no 6-hour rows, sketch
    keys without a status class, no consumer sketches, no version."""
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE rollup_consumer_sketches")
        conn.execute("DELETE FROM rollup_endpoints WHERE res = 21600")
        conn.execute("DELETE FROM rollup_consumers WHERE res = 21600")
        rows = conn.execute("SELECT res, start, method, route, hist FROM rollup_endpoints")
        for res, start, method, route, hist in rows.fetchall():
            run = latencies(parse(hist)) or [0]
            plain = {str(run[0] + i): n for i, n in enumerate(run[1:]) if n}
            conn.execute(
                "UPDATE rollup_endpoints SET hist = ? "
                "WHERE res = ? AND start = ? AND method = ? AND route = ?",
                (json.dumps(plain), res, start, method, route),
            )
        conn.execute("DELETE FROM counters WHERE name IN ('rollup_version', ?, ?)", WATERMARKS)


def test_a_database_of_the_previous_layout_is_rebuilt_from_its_raw_events(
    tmp_path: Path,
) -> None:
    db = tmp_path / "e.db"
    events = _mixed(3 * EXACT_LIMIT, seed=3)
    store = EventStore(db)
    store.insert_many(events)
    store.close()
    _as_previous_layout(db)
    reopened = EventStore(db)
    for params in ({"consumer": "alice"}, {"status": "5xx"}, {}):
        query = parse_query({**params, "range": "7d"}, now=T0 + 3 * 86400 + 1800)
        chosen = _filtered(
            events, params.get("consumer"), params.get("status"), query.start, query.end
        )
        _check_percentiles(reopened.summary(query), chosen)
    reopened.close()


def test_a_database_of_the_previous_layout_after_retention_keeps_every_count(
    tmp_path: Path,
) -> None:
    db = tmp_path / "e.db"
    events = _mixed(3 * EXACT_LIMIT, seed=4)
    store = EventStore(db)
    store.insert_many(events)
    cutoff = T0 + 86400
    store.drop_raw_before(cutoff)
    store.close()
    _as_previous_layout(db)
    reopened = EventStore(db)
    later = [
        e | {"metadata": None, "timestamp": _iso(T0 + 3 * 86400 + n)}
        for n, e in enumerate(events[:2000])
    ]
    reopened.insert_many(later)
    now = T0 + 3 * 86400 + 2400
    week = reopened.summary(parse_query({"range": "7d"}, now=now))
    assert week["totals"]["requests"] == len(events) + len(later)
    assert _within(
        week["totals"]["p95_ms"], _rank([e["response_time_ms"] for e in events + later], 95)
    )
    # Periods written before the upgrade have no class in their sketches: no percentile
    # rather than a wrong one; the events stored since have one.
    old_errors = reopened.summary(parse_query({"range": "7d", "status": "5xx"}, now=now))
    assert old_errors["totals"]["p95_ms"] is None
    assert old_errors["totals"]["requests"] == sum(
        1 for e in events + later if e["status_code"] >= 500
    )
    recent = parse_query(
        {"consumer": "alice", "from": str(T0 + 3 * 86400), "to": str(now)}, now=now
    )
    _check_percentiles(
        reopened.summary(recent), _filtered(later, "alice", None, recent.start, recent.end)
    )
    reopened.close()


def test_sketch_runs_merge_like_counts_per_bucket() -> None:
    rng = random.Random(9)
    expected: dict[tuple[str, int], int] = {}
    merged: Sketch = {}
    for _ in range(200):
        batch: dict[int, int] = {}
        for _ in range(rng.randrange(1, 30)):
            key = rng.choice((2, 4, 5)) * CLASS_KEY + rng.randrange(0, 400)
            batch[key] = batch.get(key, 0) + 1
        one: Sketch = {}
        add_counts(one, batch)
        merge_sketch(merged, parse(dump(one)))
        for key, n in batch.items():
            cls, index = divmod(key, CLASS_KEY)
            expected[(str(cls), index)] = expected.get((str(cls), index), 0) + n
    got = {(cls, run[0] + i): n for cls, run in merged.items() for i, n in enumerate(run[1:]) if n}
    assert got == expected
