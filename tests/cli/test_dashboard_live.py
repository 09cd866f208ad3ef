"""The dashboard in headless Chromium as a user drives it: a range change, a drill-down
into a consumer, a request appearing on the live stream, and an alert turning firing and
then resolved, each asserted from the DOM (and a screenshot of each step kept)."""

from __future__ import annotations

import base64
import importlib
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cli.cdp import Browser

_serve = importlib.import_module(".test_serve", __package__)
serve_factory = _serve.serve_factory
post, make_event = _serve.post, _serve.make_event

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WAIT_MS = 30000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="headless Chromium not installed (apt-get install -y chromium)",
    ),
]


def _at(n: int, when: datetime, **kw: Any) -> dict[str, Any]:
    return {**make_event(n, **kw), "timestamp": when.isoformat()}


def _wait(browser: Browser, session: str, condition: str, what: str) -> Any:
    """The value of the JS expression ``condition`` once it is truthy in the page."""
    script = f"""
    new Promise((resolve, reject) => {{
      const until = Date.now() + {WAIT_MS};
      const look = () => {{
        let value = null;
        try {{ value = ({condition}); }} catch (e) {{ value = null; }}
        if (value) resolve(value);
        else if (Date.now() > until) reject(new Error({json.dumps(what)} + ": " +
          document.getElementById("status").textContent));
        else setTimeout(look, 50);
      }};
      look();
    }})
    """
    return browser.evaluate(session, script)


def _shot(browser: Browser, session: str, path: Path) -> None:
    image = browser.call("Page.captureScreenshot", session, format="png")["data"]
    path.write_bytes(base64.b64decode(image))


CARD = """[...document.querySelectorAll("#totals .card")].find((c) =>
  c.querySelector(".label").textContent === "Requests")?.querySelector(".value").textContent"""

ROWS = """(id) => [...document.querySelectorAll("#" + id + " tbody tr")]
  .map((tr) => [...tr.children].map((td) => td.textContent))"""


def test_range_drill_down_stream_and_alert(serve_factory: Any, tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.toml"
    alerts.write_text(
        '[settings]\ninterval = "1s"\n\n'
        '[[rules]]\nname = "pay-errors"\nkind = "error_rate"\nendpoint = "POST /pay"\n'
        'threshold = 50\nwindow = "10m"\n'
    )
    ingest = serve_factory("--alerts", str(alerts))
    now = datetime.now(timezone.utc)
    events = [
        _at(1, now - timedelta(minutes=2), consumer="alice"),
        _at(2, now - timedelta(minutes=1), consumer="alice", status=500, path="/orders"),
        _at(3, now - timedelta(minutes=1), consumer="bob"),
        _at(4, now - timedelta(hours=5), consumer="alice"),
        _at(5, now - timedelta(hours=6), consumer="bob"),
    ]
    assert post(ingest.port, events)[0] == 200
    shots = tmp_path / "shots"
    shots.mkdir()
    base = f"http://127.0.0.1:{ingest.port}/"

    with Browser(CHROMIUM, tmp_path / "profile") as browser:
        session = browser.open(base + "?range=24h", 1400)
        assert _wait(browser, session, f"{CARD} === '5'", "24h totals") is True
        assert browser.evaluate(session, "document.getElementById('f-range').value") == "24h"
        _shot(browser, session, shots / "1-24h.png")

        # Range change: the picker, as a user changes it.
        browser.evaluate(
            session,
            "(() => { const s = document.getElementById('f-range'); s.value = '15m';"
            " s.dispatchEvent(new Event('change')); })()",
        )
        assert _wait(browser, session, f"{CARD} === '3'", "15m totals") is True
        assert "range=15m" in browser.evaluate(session, "location.search")
        _shot(browser, session, shots / "2-15m.png")

        # Drill-down: click alice in the consumers table.
        browser.evaluate(
            session,
            "[...document.querySelectorAll('#consumers a')]"
            ".find((a) => a.textContent === 'alice').click()",
        )
        title = _wait(
            browser,
            session,
            "!document.getElementById('consumer-view').hidden && "
            "document.querySelectorAll('#consumer-endpoints tbody tr').length === 2 && "
            "document.getElementById('view-title').textContent",
            "the consumer view",
        )
        assert title == "Consumer alice"
        assert browser.evaluate(session, f"({ROWS})('consumer-endpoints')") == [
            ["GET", "/items/{item_id}", "1", "0"],
            ["GET", "/orders", "1", "1"],
        ]
        search = browser.evaluate(session, "location.search")
        assert "view=consumer" in search
        assert "consumer=alice" in search
        assert "range=15m" in search
        assert browser.evaluate(session, "document.getElementById('seen').textContent")
        _shot(browser, session, shots / "3-consumer.png")

        # Live stream: the view's filters apply, so bob's request does not show.
        _wait(
            browser,
            session,
            "document.getElementById('live-status').textContent === '(live)'",
            "stream open",
        )
        fresh = datetime.now(timezone.utc)
        post(ingest.port, [_at(10, fresh, consumer="bob", path="/not-alice")])
        post(ingest.port, [_at(11, fresh, consumer="alice", path="/live-check")])
        row = _wait(
            browser,
            session,
            f"({ROWS})('stream').find((r) => r[2] === '/live-check')",
            "a streamed row",
        )
        assert row[5] == "alice"
        assert browser.evaluate(session, f"({ROWS})('stream').length") == 1
        _shot(browser, session, shots / "4-stream.png")

        # An alert fires, then resolves, in the alerts table.
        at = datetime.now(timezone.utc) - timedelta(seconds=1)
        post(
            ingest.port,
            [_at(100 + n, at, method="POST", path="/pay", status=500) for n in range(5)],
        )
        state = "document.querySelector('#alerts tr[data-rule=\"pay-errors\"]')?.dataset.state"
        assert _wait(browser, session, f"{state} === 'firing'", "the alert firing") is True
        assert not browser.evaluate(session, "document.getElementById('alerts-box').hidden")
        _shot(browser, session, shots / "5-firing.png")
        post(ingest.port, [_at(200 + n, at, method="POST", path="/pay") for n in range(50)])
        assert _wait(browser, session, f"{state} === 'inactive'", "the alert resolved") is True
        _shot(browser, session, shots / "6-resolved.png")
    for shot in shots.iterdir():
        assert shot.stat().st_size > 1000
