"""The dashboard page rendered by headless Chromium shows the figures the test computed."""

from __future__ import annotations

import importlib
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from cli.cdp import Browser

_serve = importlib.import_module(".test_serve", __package__)
_report = importlib.import_module(".test_report", __package__)
serve_factory = _serve.serve_factory

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_TIMEOUT = 90

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="headless Chromium not installed (apt-get install -y chromium)",
    ),
]


class _Rows(HTMLParser):
    """Collects the cell texts of every table row, keyed by the row's data-* attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[dict[str, str], list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            data = {k: v or "" for k, v in attrs if k.startswith("data-")}
            self.rows.append((data, []))
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self.rows:
            self.rows[-1][1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


RENDERED = """
new Promise((resolve, reject) => {
  const until = Date.now() + 30000;
  const look = () => {
    const status = document.getElementById("status");
    if (status && status.textContent.startsWith("updated")) {
      resolve(document.documentElement.outerHTML);
    } else if (Date.now() > until) {
      reject(new Error("the page never rendered: " + (status && status.textContent)));
    } else {
      setTimeout(look, 100);
    }
  };
  look();
})
"""


def test_dashboard_renders_computed_figures(serve_factory: Any, tmp_path: Path) -> None:
    events = _report.traffic()
    ingest = serve_factory()
    assert _serve.post(ingest.port, events)[0] == 200

    # The page holds its live stream open, so it never goes idle for --dump-dom: the DOM
    # is read over DevTools once the page says it rendered a summary.
    with Browser(CHROMIUM, tmp_path / "profile") as browser:
        session = browser.open(f"http://127.0.0.1:{ingest.port}/", 1400)
        html: str = browser.evaluate(session, RENDERED)
    parser = _Rows()
    parser.feed(html)
    endpoint_rows = [cells for data, cells in parser.rows if set(data) == {"data-endpoint"}]
    assert endpoint_rows == [
        _report.expected_endpoint(events, "GET", "/items/{item_id}"),
        _report.expected_endpoint(events, "POST", "/orders"),
    ]
    consumer_rows = {tuple(cells) for data, cells in parser.rows if "data-consumer" in data}
    assert consumer_rows == _report.expected_consumers(events)
    assert 'id="status" class=""' in html
    assert "<rect" in html
