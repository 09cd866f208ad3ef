"""What the dashboard and the report show: event time, unmatched requests grouped, the
empty state, and a page that fits a phone (checked in headless Chromium)."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cli.cdp import Browser

_serve = importlib.import_module(".test_serve", __package__)
serve_factory = _serve.serve_factory
ingest = _serve.ingest
post, request, make_event = _serve.post, _serve.request, _serve.make_event

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.slow


def _at(n: int, when: datetime, **kw: Any) -> dict[str, Any]:
    return {**make_event(n, **kw), "timestamp": when.isoformat()}


def _summary(port: int) -> dict[str, Any]:
    status, body = request(port, "GET", "/api/summary")
    assert status == 200
    result: dict[str, Any] = json.loads(body)
    return result


def _report(db: Path, *args: str) -> str:
    result = subprocess.run(
        [*_serve.cli_command(), "report", "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_requests_per_second_follow_the_event_time(ingest: Any) -> None:
    # A steady 3 requests/s for 10 s, delivered in one batch (as an exporter does).
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=25)
    events = [
        _at(n, start + timedelta(seconds=n // 3, milliseconds=300 * (n % 3))) for n in range(30)
    ]
    assert post(ingest.port, events)[0] == 200

    summary = _summary(ingest.port)

    per_second = {p["second"]: p["requests"] for p in summary["timeline"] if p["requests"]}
    first = int(start.timestamp())
    assert per_second == {first + i: 3 for i in range(10)}


def test_a_replayed_database_shows_its_last_minute(serve_factory: Any, tmp_path: Path) -> None:
    day_ago = datetime(2026, 11, 23, 7, 5, 0, tzinfo=timezone.utc)
    events = [_at(n, day_ago + timedelta(seconds=n)) for n in range(40)]
    first = serve_factory(db=tmp_path / "old.db")
    assert post(first.port, events)[0] == 200
    first.stop()

    replay = serve_factory(db=tmp_path / "old.db")
    summary = _summary(replay.port)

    newest = int((day_ago + timedelta(seconds=39)).timestamp())
    assert summary["timeline_live"] is False
    assert summary["timeline_end"] == newest
    assert summary["timeline"][-1]["second"] == newest
    assert sum(p["requests"] for p in summary["timeline"]) == 40
    assert {p["requests"] for p in summary["timeline"] if p["second"] >= newest - 39} == {1}


def test_latest_requests_are_ordered_by_event_time(ingest: Any) -> None:
    base = datetime(2026, 11, 23, 7, 0, 0, tzinfo=timezone.utc)
    # Arrival order differs from request order, and the two timestamp styles of the
    # official SDKs (+00:00 with microseconds, Z with milliseconds) are mixed.
    order = [3, 0, 4, 1, 2]
    events = []
    for n in order:
        when = base + timedelta(seconds=n, milliseconds=250)
        stamp = when.isoformat() if n % 2 else when.strftime("%Y-%m-%dT%H:%M:%S.250Z")
        events.append({**make_event(n + 1, path=f"/p{n}"), "timestamp": stamp})
    for event in events:  # one batch per event: arrival order is the list order
        assert post(ingest.port, [event])[0] == 200

    latest = [e["path"] for e in _summary(ingest.port)["latest"]]
    assert latest == ["/p4", "/p3", "/p2", "/p1", "/p0"]

    ingest.stop()
    lines = _report(ingest.db, "--latest", "5").split("Latest 5 requests", 1)[1].splitlines()
    assert [line.split()[2] for line in lines[3:8]] == ["/p4", "/p3", "/p2", "/p1", "/p0"]


def _scan() -> list[dict[str, Any]]:
    events = [make_event(n, path=f"/nope/{n}", status=404) for n in range(1, 301)]
    events += [make_event(1000 + n, path="/nope/1", status=404) for n in range(4)]
    events += [make_event(2000 + n, method="POST", path="/items", status=405) for n in range(2)]
    events += [make_event(3000 + n, path="/items/{item_id}", status=404) for n in range(3)]
    events += [make_event(4000 + n, path="/items/{item_id}") for n in range(5)]
    events += [make_event(5000 + n, path="/users/:uid", status=404) for n in range(2)]
    return events


def test_unmatched_requests_are_one_row_per_method_and_status(ingest: Any) -> None:
    assert post(ingest.port, _scan())[0] == 200

    summary = _summary(ingest.port)

    rows = {(e["method"], e["path"]): e for e in summary["endpoints"]}
    assert set(rows) == {
        ("GET", "unmatched (404)"),
        ("POST", "unmatched (405)"),
        ("GET", "/items/{item_id}"),
        ("GET", "/users/:uid"),
    }
    scan = rows[("GET", "unmatched (404)")]
    assert scan["requests"] == 304
    assert scan["errors"] == 304
    assert scan["unmatched"]["status_code"] == 404
    assert scan["unmatched"]["distinct_paths"] == 300
    assert len(scan["unmatched"]["paths"]) == 20
    assert scan["unmatched"]["paths"][0] == {"path": "/nope/1", "requests": 5}
    # A route template that answered 404 (a missing item) stays its own endpoint.
    assert rows[("GET", "/items/{item_id}")]["requests"] == 8
    assert rows[("GET", "/items/{item_id}")]["unmatched"] is None
    (anonymous,) = summary["consumers"]
    assert {(e["method"], e["path"]) for e in anonymous["endpoints"]} == set(rows)
    # The raw paths are kept in the events themselves.
    assert any(e["path"].startswith("/nope/") for e in summary["latest"])

    ingest.stop()
    out = _report(ingest.db)
    endpoint_lines = out.split("Endpoints", 1)[1].split("Unmatched paths", 1)[0]
    assert "GET     unmatched (404)" in endpoint_lines
    assert "/nope/2" not in endpoint_lines
    unmatched = out.split("Unmatched paths", 1)[1].split("Consumers", 1)[0]
    assert "/nope/1" in unmatched
    assert "(and 280 more paths)" in unmatched


pytest_browser = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="headless Chromium not installed (apt-get install -y chromium)",
)

# Resolves once the page has rendered a summary: the measurements of its layout.
_MEASURE = """
new Promise((resolve, reject) => {
  const until = Date.now() + 20000;
  const look = () => {
    const status = document.getElementById("status");
    if (status && status.textContent.startsWith("updated")) {
      const box = (el) => el.getBoundingClientRect();
      resolve({
        viewport: window.innerWidth,
        page: document.documentElement.scrollWidth,
        chart: box(document.getElementById("chart")).width,
        // The boxes of the view on show (the drill-down views are hidden here).
        boxes: [...document.querySelectorAll(".scroll")].filter((el) => el.offsetParent)
          .map((el) => ({
          id: el.querySelector("table").id, client: el.clientWidth, scroll: el.scrollWidth,
          right: box(el).right,
        })),
        empty: document.getElementById("empty").hidden
          ? null : document.getElementById("empty").innerText,
        groups: [...document.querySelectorAll("details[data-group]")].map((d) => ({
          group: d.dataset.group, summary: d.querySelector("summary").textContent,
          paths: [...d.querySelectorAll("li")].map((li) => li.textContent),
        })),
        chartTitle: document.getElementById("chart-title").textContent,
      });
    } else if (Date.now() > until) {
      reject(new Error("the page never rendered a summary"));
    } else {
      setTimeout(look, 100);
    }
  };
  look();
})
"""


def _measure(url: str, width: int, profile: Path) -> dict[str, Any]:
    with Browser(CHROMIUM, profile) as browser:
        session = browser.open(url, width)
        result: dict[str, Any] = browser.evaluate(session, _MEASURE)
        return result


@pytest_browser
def test_page_fits_420_px_and_uses_1400_px(ingest: Any, tmp_path: Path) -> None:
    assert post(ingest.port, _scan())[0] == 200
    url = f"http://127.0.0.1:{ingest.port}/"

    narrow = _measure(url, 420, tmp_path / "narrow")
    wide = _measure(url, 1400, tmp_path / "wide")

    # At 420 px the page never scrolls sideways: the chart shrinks, and the tables
    # scroll inside their own boxes.
    assert narrow["viewport"] == 420
    assert narrow["page"] <= 420, narrow
    assert 300 <= narrow["chart"] <= 420, narrow
    for box in narrow["boxes"]:
        assert box["right"] <= 420, box
        assert box["scroll"] > box["client"], box  # the table is wider: it scrolls in its box
    # At 1400 px the chart has its full size and nothing scrolls.
    assert wide["viewport"] == 1400
    assert wide["page"] <= 1400, wide
    assert wide["chart"] == 720
    for box in wide["boxes"]:
        assert box["scroll"] <= box["client"], box
    # The unmatched group shows its raw paths one click away.
    (group,) = [g for g in wide["groups"] if g["group"] == "GET 404"]
    assert group["summary"] == "unmatched (404)"
    assert group["paths"][0] == "/nope/1 (5)"
    assert group["paths"][-1] == "and 280 more paths"


@pytest_browser
def test_empty_dashboard_says_how_to_send_data(serve_factory: Any, tmp_path: Path) -> None:
    url_any = serve_factory()
    keyed = serve_factory("--api-key", "s3cret", db=tmp_path / "keyed.db")

    shown = _measure(f"http://127.0.0.1:{url_any.port}/", 1400, tmp_path / "a")["empty"]
    keyed_shown = _measure(f"http://127.0.0.1:{keyed.port}/", 1400, tmp_path / "b")["empty"]

    events_url = f"http://127.0.0.1:{url_any.port}/v1/events"
    assert f"PEEKAPI_ENDPOINT={events_url} PEEKAPI_API_KEY=any-key" in shown
    assert "opentelemetry-instrument" in shown
    assert f"curl -X POST {events_url} -H 'Content-Type: application/json'" in shown
    assert "THE-KEY-SERVE-REQUIRES" in keyed_shown
    assert "s3cret" not in keyed_shown
    # The curl line it shows really stores an event.
    curl = shown.split("curl ", 1)[1].replace("\\\n", " ")
    body = curl.split("-d '", 1)[1].rsplit("'", 1)[0]
    assert post(url_any.port, json.loads(body))[0] == 200
    deadline = time.monotonic() + 10
    while _measure(f"http://127.0.0.1:{url_any.port}/", 1400, tmp_path / "c")["empty"]:
        assert time.monotonic() < deadline
