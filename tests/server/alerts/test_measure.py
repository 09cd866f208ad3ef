"""Each rule kind measured over a real SQLite file of events, at a chosen moment."""

from __future__ import annotations

from pathlib import Path

from peekapi_otel.server.alerts._measure import Measurement, measure
from peekapi_otel.server.alerts._metrics import SqliteMetrics
from peekapi_otel.server.alerts._rules import Rule, parse_alerts
from server.alerts.support import T0, event, store_events


def _rule(body: str) -> Rule:
    return parse_alerts(f'[[rules]]\nname = "r"\n{body}').rules[0]


def _measure(db: Path, body: str, now: float) -> Measurement:
    return measure(_rule(body), SqliteMetrics(db), now)


def test_error_rate_counts_the_status_class_within_the_window(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    store_events(
        db,
        # Outside the window (6 min before T0): all errors, must not count.
        [event(T0 - 360 + i, status=500) for i in range(10)]
        # Inside: 20 requests, 3 of them 5xx, 2 of them 4xx.
        + [event(T0 - 200 + i, status=200) for i in range(15)]
        + [event(T0 - 100 + i, status=503) for i in range(3)]
        + [event(T0 - 50 + i, status=404) for i in range(2)],
    )
    rule = 'kind = "error_rate"\nthreshold = 10\nwindow = "5m"\n'
    assert _measure(db, rule, T0) == Measurement(True, 15.0, 20)
    assert _measure(db, rule + 'statuses = "errors"\n', T0) == Measurement(True, 25.0, 20)
    assert _measure(db, rule.replace("10", "15"), T0).active is False  # not over 15 %
    # Too few requests to judge: no verdict, no value.
    assert _measure(db, rule + "min_requests = 21\n", T0) == Measurement(False, None, 20)


def test_error_rate_filters_by_endpoint_consumer_and_method(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    store_events(
        db,
        [event(T0 - 10, status=500, method="POST", path="/pay", consumer="acme")] * 1
        + [event(T0 - 9, status=200, method="POST", path="/pay", consumer="beta")] * 1
        + [event(T0 - 8, status=200, method="GET", path="/pay", consumer="acme")] * 2,
    )
    base = 'kind = "error_rate"\nthreshold = 10\nwindow = "1m"\n'
    assert _measure(db, base + 'endpoint = "POST /pay"\n', T0).value == 50.0
    assert _measure(db, base + 'consumer = "acme"\n', T0).value == 33.33
    assert _measure(db, base + 'method = "get"\n', T0).value == 0.0
    assert _measure(db, base + 'path = "/p*"\nconsumer = "beta"\n', T0).value == 0.0
    assert _measure(db, base, T0).requests == 4


def test_latency_p95_and_average(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    # 100 requests at 1..100 ms: p95 (nearest rank) is 95, the average 50.5.
    store_events(db, [event(T0 - 100 + i, ms=float(i + 1)) for i in range(100)])
    p95 = 'kind = "latency"\nthreshold = 90\nwindow = "5m"\n'
    assert _measure(db, p95, T0) == Measurement(True, 95.0, 100)
    assert _measure(db, p95 + 'stat = "avg"\n', T0) == Measurement(False, 50.5, 100)
    assert _measure(db, p95 + 'stat = "p99"\n', T0).value == 99.0
    assert _measure(db, p95 + 'stat = "p50"\n', T0).value == 50.0  # sorted the other way
    assert _measure(db, p95 + 'stat = "p90"\n', T0).value == 90.0
    # A window holding only the last 10 seconds: 91..100 ms.
    assert _measure(db, p95.replace("5m", "10s"), T0).value == 100.0
    # No requests in the window: no data, not firing.
    assert _measure(db, p95, T0 + 3600) == Measurement(False, None, 0)


def test_volume_spike_and_drop_against_the_previous_window(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    # Previous minute: 10 requests. Last minute: 30.
    store_events(
        db,
        [event(T0 - 120 + i) for i in range(10)] + [event(T0 - 60 + i) for i in range(30)],
    )
    spike = 'kind = "volume"\nthreshold = 100\nwindow = "1m"\n'
    assert _measure(db, spike, T0) == Measurement(True, 200.0, 30)
    assert _measure(db, spike.replace("100", "250"), T0).active is False
    drop = 'kind = "volume"\ndirection = "drop"\nthreshold = 50\nwindow = "1m"\n'
    assert _measure(db, drop, T0).active is False
    # One minute later: the previous window holds 30, the current none: a 100 % drop.
    assert _measure(db, drop, T0 + 60) == Measurement(True, -100.0, 0)
    # A baseline below min_requests gives no verdict.
    assert _measure(db, drop + "min_requests = 31\n", T0 + 60) == Measurement(False, None, 0)


def test_inactivity_of_an_endpoint_or_a_consumer(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    store_events(
        db,
        [
            event(T0 - 30, path="/busy", consumer="acme"),
            event(T0 - 600, path="/quiet", consumer="beta"),
        ],
    )
    metrics = SqliteMetrics(db)
    rule = 'kind = "inactivity"\nwindow = "5m"\n'
    watched = T0 - 3600  # the rule has been evaluated for an hour

    def check(body: str, watched_since: float | None = watched) -> Measurement:
        return measure(_rule(rule + body), metrics, T0, watched_since=watched_since)

    assert check('path = "/busy"\n') == Measurement(False, 30.0, 0)
    assert check('path = "/quiet"\n') == Measurement(True, None, 0)
    assert check('consumer = "beta"\n') == Measurement(True, None, 0)
    assert check('consumer = "acme"\n') == Measurement(False, 30.0, 0)
    assert check('consumer = "gone"\n') == Measurement(True, None, 0)
    # A rule watching for less than its window does not hold yet.
    assert check('consumer = "gone"\n', None) == Measurement(False, None, 0)
    assert check('consumer = "gone"\n', T0 - 299) == Measurement(False, None, 0)
    assert check('consumer = "gone"\n', T0 - 300) == Measurement(True, None, 0)


def test_the_event_timestamp_is_the_time_axis_in_any_utc_spelling(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    late = event(T0 - 30, status=500)
    zulu = {**event(T0 - 20, status=500), "timestamp": "2026-12-03T07:59:40Z"}
    store_events(db, [late, zulu, event(T0 - 400, status=200)])
    rule = 'kind = "error_rate"\nthreshold = 10\nwindow = "1m"\n'
    # Both errors count, whatever time they were received; the old 200 does not.
    assert _measure(db, rule, T0) == Measurement(True, 100.0, 2)
