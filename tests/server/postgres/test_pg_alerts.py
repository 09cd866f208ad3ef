"""The alert engine on PostgreSQL: the rules' figures equal SQLite's over the same
events, and two engines sharing the database through the advisory lock fire, hand over
and resolve with one notification each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peekapi_otel.server._store import validate_batch
from peekapi_otel.server.alerts import AlertEngine
from peekapi_otel.server.alerts._metrics import SqliteMetrics
from peekapi_otel.server.alerts._rules import Selector, parse_alerts
from peekapi_otel.server.db._pg_alerts import PgAlertDatabase, PgMetrics
from peekapi_otel.server.db._pg_leader import AdvisoryLeader
from peekapi_otel.server.db._pg_store import PgEventStore
from server.alerts.support import T0, Clock, Receiver, event, receiver, store_events


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as server:
        yield server


def _events() -> list[dict[str, Any]]:
    out = []
    for i in range(120):
        out.append(
            event(
                T0 + i,
                status=500 if i % 7 == 0 else 200,
                ms=float((i * 37) % 101),
                method="POST" if i % 3 else "GET",
                path=f"/pay/{i % 4}" if i % 2 else "/items",
                consumer=f"c{i % 5}",
            )
        )
    return out


SELECTORS = [
    Selector(),
    Selector(method="POST"),
    Selector(path="/pay/*"),
    Selector(path="/items", consumer="c2"),
    Selector(consumer="nobody"),
]


@pytest.mark.parametrize("selector", SELECTORS, ids=lambda s: str(s.labels()) or "all")
def test_figures_equal_those_of_sqlite(pg_url: str, tmp_path: Path, selector: Selector) -> None:
    events = _events()
    store_events(tmp_path / "e.db", events)
    pg_store = PgEventStore(pg_url)
    pg_store.insert_rows(validate_batch(events))
    pg_store.close()
    lite, pg = SqliteMetrics(tmp_path / "e.db"), PgMetrics(pg_url)
    for start, end in ((T0, T0 + 60), (T0 + 30, T0 + 200), (T0 - 100, T0)):
        assert pg.counts(selector, start, end, (500, 599)) == lite.counts(
            selector, start, end, (500, 599)
        )
        for stat in ("avg", "p50", "p95", "p99"):
            ours, theirs = (
                pg.latency(selector, start, end, stat),
                lite.latency(selector, start, end, stat),
            )
            assert ours.requests == theirs.requests
            assert ours.value_ms == pytest.approx(theirs.value_ms)
        assert pg.last_seen(selector, start, end) == lite.last_seen(selector, start, end)
    pg.close()


def _engine(url: str, hook: Receiver, clock: Clock, leader: AdvisoryLeader) -> AlertEngine:
    config = parse_alerts(
        '[settings]\ninterval = "1s"\n\n'
        f'[channels.hook]\ntype = "webhook"\nurl = "{hook.url}/alerts"\n\n'
        '[[rules]]\nname = "pay-errors"\nkind = "error_rate"\nthreshold = 50\n'
        'window = "1m"\nendpoint = "POST /pay"\n'
    )
    return AlertEngine(
        config,
        url,
        dashboard="http://127.0.0.1:8787",
        clock=clock,
        metrics=PgMetrics(url),
        database=PgAlertDatabase(url, leader.is_leader),
        leader=leader.is_leader,
    )


def test_a_standby_engine_continues_from_the_stored_state(pg_url: str, hook: Receiver) -> None:
    store = PgEventStore(pg_url)
    clock = Clock()
    leaders = [AdvisoryLeader(pg_url), AdvisoryLeader(pg_url)]
    engines = [_engine(pg_url, hook, clock, leader) for leader in leaders]
    try:
        assert leaders[0].is_leader()
        store.insert_rows(
            validate_batch([event(T0 - 1, status=500, method="POST", path="/pay")] * 4)
        )
        for engine in engines:
            engine.start()
        assert [r.body["state"] for r in hook.wait_for(1)] == ["firing"]
        # The leader goes away; the standby takes over and reads the firing state, so it
        # does not fire again, and resolves once the errors leave the window.
        engines[0].stop()
        leaders[0].release()
        clock.advance(120)
        received = hook.wait_for(2)
        assert [r.body["state"] for r in received] == ["firing", "resolved"]
        assert engines[1].evaluations >= 1
    finally:
        for engine in engines:
            engine.stop()
        for leader in leaders:
            leader.release()
        store.close()
