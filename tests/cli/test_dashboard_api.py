"""The dashboard's JSON API through a real ``serve``: ranges and filters in the query
string, the endpoint and consumer views, the live stream, and ``--retention``."""

from __future__ import annotations

import http.client
import importlib
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from cli.support import run_cli

_serve = importlib.import_module(".test_serve", __package__)
_report = importlib.import_module(".test_report", __package__)
serve_factory = _serve.serve_factory
ingest = _serve.ingest
post, request, make_event = _serve.post, _serve.request, _serve.make_event

STREAM_TIMEOUT = 20.0

pytestmark = pytest.mark.slow


def _at(n: int, when: datetime, **kw: Any) -> dict[str, Any]:
    return {**make_event(n, **kw), "timestamp": when.isoformat()}


def _get(port: int, path: str) -> tuple[int, Any]:
    status, body = request(port, "GET", path)
    return status, json.loads(body)


def test_ranges_filters_and_views(ingest: Any) -> None:
    now = datetime.now(timezone.utc)
    events = [
        _at(1, now - timedelta(minutes=5), consumer="alice"),
        _at(2, now - timedelta(minutes=4), consumer="alice", status=503),
        _at(3, now - timedelta(minutes=3), consumer="bob", method="POST", path="/orders"),
        _at(4, now - timedelta(hours=5), consumer="bob"),
        _at(5, now - timedelta(days=3)),
    ]
    assert post(ingest.port, events)[0] == 200

    def requests(query: str) -> int:
        status, body = _get(ingest.port, "/api/summary?" + query)
        assert status == 200, body
        return int(body["totals"]["requests"])

    assert requests("") == 5
    assert requests("range=15m") == 3
    assert requests("range=24h") == 4
    assert requests("range=7d") == 5
    assert requests("range=24h&consumer=alice") == 2
    assert requests("range=15m&status=5xx") == 1
    assert requests("consumer=" + quote("(anonymous)")) == 1
    start = int((now - timedelta(hours=6)).timestamp())
    assert requests(f"from={start}&to={int((now - timedelta(hours=1)).timestamp())}") == 1

    status, view = _get(
        ingest.port, "/api/endpoint?range=1h&method=GET&path=" + quote("/items/{item_id}")
    )
    assert status == 200
    assert view["totals"]["requests"] == 2
    assert {c["consumer_id"] for c in view["top_consumers"]} == {"alice"}
    assert sum(p["statuses"]["5xx"] for p in view["series"]) == 1

    status, alice = _get(ingest.port, "/api/consumer?range=24h&consumer=alice")
    assert status == 200
    assert (alice["requests"], alice["errors"], alice["error_rate"]) == (2, 1, 50.0)
    assert alice["first_seen"] <= alice["last_seen"]

    for bad, reason in (
        ("/api/summary?range=2w", "range="),
        ("/api/summary?status=6xx", "status="),
        ("/api/summary?from=yesterday", "from="),
        ("/api/summary?range=1h&from=1", "either range or from/to"),
        ("/api/endpoint?range=1h", "method and path"),
        ("/api/consumer", "needs consumer"),
    ):
        status, body = _get(ingest.port, bad)
        assert status == 400, bad
        assert reason in body["error"], body


def _open_stream(port: int, query: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=STREAM_TIMEOUT)
    conn.request("GET", "/api/stream?" + query, headers={"Host": f"127.0.0.1:{port}"})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    assert response.fp.readline() == b"retry: 1000\n"
    return response


def _next_batch(response: http.client.HTTPResponse) -> list[dict[str, Any]]:
    deadline = time.monotonic() + STREAM_TIMEOUT
    while time.monotonic() < deadline:
        line = response.fp.readline()
        assert line, "the stream ended"
        if line.startswith(b"data: "):
            events: list[dict[str, Any]] = json.loads(line[6:])
            return events
    raise AssertionError("no event on the stream")


def test_stream_pushes_each_stored_event_and_applies_filters(ingest: Any) -> None:
    everything = _open_stream(ingest.port, "")
    only_bob = _open_stream(ingest.port, "consumer=bob&status=5xx")
    now = datetime.now(timezone.utc)
    assert post(ingest.port, [_at(1, now, consumer="alice")])[0] == 200
    assert post(ingest.port, [_at(1, now, consumer="alice")])[0] == 200  # a duplicate
    mixed = [_at(2, now, consumer="bob", status=502, path="/pay"), _at(3, now, consumer="bob")]
    assert post(ingest.port, mixed)[0] == 200

    # One message per stored batch; the duplicate batch stored nothing and sent nothing.
    (first,), (second, third) = _next_batch(everything), _next_batch(everything)
    assert (first["consumer_id"], second["consumer_id"]) == ("alice", "bob")
    assert (second["path"], second["status_code"]) == ("/pay", 502)
    assert third["status_code"] == 200
    assert [e["path"] for e in _next_batch(only_bob)] == ["/pay"]
    _, health = _get(ingest.port, "/healthz")
    assert health["stream"]["subscribers"] == 2
    everything.close()
    only_bob.close()


def test_retention_option(tmp_path: Path, serve_factory: Any) -> None:
    for bad in ("soon", "30s"):
        result = run_cli("serve", "--port", "0", "--db", str(tmp_path / "x.db"), "--retention", bad)
        assert result.code == 2
        assert "--retention" in result.err
    db = tmp_path / "events.db"
    first = serve_factory(db=db)
    now = datetime.now(timezone.utc)
    old = [_at(n, now - timedelta(days=40), status=500) for n in range(5)]
    assert post(first.port, [*old, _at(9, now)])[0] == 200
    assert first.stop() == 0
    kept = serve_factory("--retention", "30d", db=db)
    deadline = time.monotonic() + 30
    while len(_serve.stored(db)) != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(_serve.stored(db)) == 1  # the old raw rows are gone
    status, summary = _get(kept.port, "/api/summary")
    assert status == 200
    assert summary["totals"]["requests"] == 6  # the rollups still count them
    assert summary["totals"]["server_errors"] == 5
    assert len(summary["latest"]) == 1


def test_report_beside_a_running_serve_reads_its_sketches(ingest: Any) -> None:
    # More events than the exact path reads raw: the report's p95 comes from the day and
    # hour sketches, which serve writes within about a second even when nothing more comes.
    now = datetime.now(timezone.utc)
    times = [float(1 + n % 200) for n in range(6000)]
    events = [
        _at(n, now - timedelta(seconds=n), ms=times[n], consumer=f"c{n % 7}") for n in range(6000)
    ]
    for i in range(0, 6000, 1000):
        assert post(ingest.port, events[i : i + 1000])[0] == 200
    true_p95 = sorted(times)[(95 * 6000 + 99) // 100 - 1]
    deadline = time.monotonic() + 30
    while True:
        result = _report.run_report(ingest.db)
        assert result.returncode == 0, result.stderr
        ((requests, *_rest, p95, _consumers),) = _report.section(result.stdout, "Totals")
        if p95 != "-" and abs(float(p95) - true_p95) <= 0.01 * true_p95:
            break
        assert time.monotonic() < deadline, result.stdout
        time.sleep(0.2)
    assert requests == "6000"


def test_consumer_and_status_filters_show_percentiles_over_a_week(ingest: Any) -> None:
    # More events than the exact path reads raw, over two days: the filtered p95 comes
    # from the hour, day and consumer sketches and matches the raw rows within 1 %.
    now = datetime.now(timezone.utc)
    events, count = [], 6000
    for n in range(count):
        status = (200, 200, 200, 404, 500)[n % 5]
        ms = float(1 + (n * 7919) % 997) * (3.0 if status == 500 else 1.0)
        when = now - timedelta(seconds=1 + n * 2 * 86400 // count)
        events.append(_at(n, when, status=status, ms=ms, consumer=("alice", "bob", "carol")[n % 3]))
    for i in range(0, count, 1000):
        assert post(ingest.port, events[i : i + 1000])[0] == 200

    def rank(values: list[float], percent: int) -> float:
        ordered = sorted(values)
        return ordered[(percent * len(ordered) + 99) // 100 - 1]

    for query, keep in (
        ("consumer=alice", lambda e: e["consumer_id"] == "alice"),
        ("status=5xx", lambda e: e["status_code"] >= 500),
        (
            "consumer=bob&status=4xx",
            lambda e: e["consumer_id"] == "bob" and e["status_code"] == 404,
        ),
    ):
        status, body = _get(ingest.port, "/api/summary?range=7d&" + query)
        assert status == 200, body
        chosen = [e["response_time_ms"] for e in events if keep(e)]
        totals = body["totals"]
        assert totals["requests"] == len(chosen), query
        for p in (50, 95, 99):
            true = rank(chosen, p)
            assert totals[f"p{p}_ms"] is not None, (query, totals)
            assert abs(totals[f"p{p}_ms"] - true) <= 0.01 * true + 0.01, (query, p, totals)
