"""The dashboard page rendered by headless Chromium shows the figures the test computed."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

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


def dump_dom(url: str, profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT,
        check=False,
    )


def test_dashboard_renders_computed_figures(serve_factory: Any, tmp_path: Path) -> None:
    events = _report.traffic()
    ingest = serve_factory()
    assert _serve.post(ingest.port, events)[0] == 200

    result = dump_dom(f"http://127.0.0.1:{ingest.port}/", tmp_path / "profile")

    assert result.returncode == 0, result.stderr[-2000:]
    page_errors = [
        line
        for line in result.stderr.splitlines()
        # Chromium prints page console messages as "CONSOLE(12)" or ":CONSOLE:12]"
        # depending on version; this page logs nothing, so any such line is a fault.
        if "Uncaught" in line or re.search(r"CONSOLE[(:]\d+", line)
    ]
    assert page_errors == []
    parser = _Rows()
    parser.feed(result.stdout)
    endpoint_rows = [cells for data, cells in parser.rows if set(data) == {"data-endpoint"}]
    assert endpoint_rows == [
        _report.expected_endpoint(events, "GET", "/items/{item_id}"),
        _report.expected_endpoint(events, "POST", "/orders"),
    ]
    consumer_rows = {tuple(cells) for data, cells in parser.rows if "data-consumer" in data}
    assert consumer_rows == _report.expected_consumers(events)
    assert 'id="status" class=""' in result.stdout
    assert "<rect" in result.stdout
