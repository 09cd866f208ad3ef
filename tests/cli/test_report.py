"""`peekapi-otel report` prints figures computed from what `serve` stored."""

from __future__ import annotations

import importlib
import re
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from peekapi_otel.server._store import EventStore

# The process helpers live in test_serve.py; imported by package-relative name because
# this directory has no conftest of its own to hold them.
_serve = importlib.import_module(".test_serve", __package__)
serve_factory = _serve.serve_factory
make_event = _serve.make_event
post = _serve.post

pytestmark = pytest.mark.slow


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    rank = -(-95 * len(ordered) // 100)  # ceil(0.95 n) without float rounding
    return ordered[rank - 1]


def traffic() -> list[dict[str, Any]]:
    """A fixed mix of endpoints, statuses, latencies and consumers."""
    events = []
    for n in range(1, 121):
        events.append(
            make_event(
                n,
                path="/items/{item_id}",
                status=500 if n % 17 == 0 else (404 if n % 7 == 0 else 200),
                ms=round(1.0 + (n * 37 % 101) / 3, 2),
                consumer=("alice", "bob", None)[n % 3],
            )
        )
    for n in range(121, 161):
        events.append(
            make_event(
                n,
                method="POST",
                path="/orders",
                status=201 if n % 5 else 503,
                ms=round(20 + (n * 13 % 47) * 1.37, 2),
                consumer="alice" if n % 2 else "carol",
            )
        )
    return events


def expected_endpoint(events: list[dict[str, Any]], method: str, path: str) -> list[str]:
    """The report's row for one endpoint, computed here from the events sent."""
    mine = [e for e in events if e["method"] == method and e["path"] == path]
    times = [e["response_time_ms"] for e in mine]
    errors = sum(e["status_code"] >= 400 for e in mine)
    server_errors = sum(e["status_code"] >= 500 for e in mine)
    return [
        method,
        path,
        str(len(mine)),
        str(errors),
        str(server_errors),
        f"{100 * errors / len(mine):.1f}%",
        f"{sum(times) / len(times):.2f}",
        f"{p95(times):.2f}",
    ]


def expected_consumers(events: list[dict[str, Any]]) -> set[tuple[str, ...]]:
    counts: dict[tuple[str, str, str], list[int]] = {}
    for e in events:
        key = (e["consumer_id"] or "(anonymous)", e["method"], e["path"])
        entry = counts.setdefault(key, [0, 0])
        entry[0] += 1
        entry[1] += e["status_code"] >= 400
    return {(*key, str(n), str(err)) for key, (n, err) in counts.items()}


def section(output: str, title: str) -> list[list[str]]:
    """The rows of one report table, split on runs of two or more spaces."""
    lines = ("\n" + output).split(f"\n{title}\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert set(lines[1]) <= {"-", " "}
    return [re.split(r"\s{2,}", line.strip()) for line in lines[2:]]


def run_report(db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "peekapi_otel.server._cli", "report", "--db", str(db), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_report_shows_computed_figures(serve_factory: Any, tmp_path: Path) -> None:
    events = traffic()
    ingest = serve_factory()
    assert post(ingest.port, events[:70])[0] == 200
    assert post(ingest.port, events[70:])[0] == 200
    assert ingest.stop() == 0

    result = run_report(ingest.db, "--latest", "5")

    assert result.returncode == 0, result.stderr
    endpoints = section(result.stdout, "Endpoints")
    assert endpoints == [
        expected_endpoint(events, "GET", "/items/{item_id}"),
        expected_endpoint(events, "POST", "/orders"),
    ]
    assert set(map(tuple, section(result.stdout, "Consumers"))) == expected_consumers(events)
    times = [e["response_time_ms"] for e in events]
    errors = sum(e["status_code"] >= 400 for e in events)
    ((requests, n_errors, _, rate, avg, p95_all, consumers),) = section(result.stdout, "Totals")
    assert (requests, n_errors, rate) == ("160", str(errors), f"{100 * errors / 160:.1f}%")
    assert (avg, p95_all, consumers) == (f"{sum(times) / 160:.2f}", f"{p95(times):.2f}", "3")
    latest = section(result.stdout, "Latest 5 requests")
    assert [row[4] for row in latest] == [f"{e['response_time_ms']:.2f}" for e in events[:-6:-1]]


def test_report_while_serving(serve_factory: Any) -> None:
    ingest = serve_factory()
    post(ingest.port, [make_event(1, ms=7.25)])

    result = run_report(ingest.db)

    assert result.returncode == 0, result.stderr
    assert section(result.stdout, "Endpoints")[0][-2:] == ["7.25", "7.25"]


@pytest.mark.parametrize("kind", ["missing", "not-a-db", "other-sqlite"])
def test_report_clear_error(tmp_path: Path, kind: str) -> None:
    db = tmp_path / "x.db"
    if kind == "not-a-db":
        db.write_text("hello")
    elif kind == "other-sqlite":
        sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()

    result = run_report(db)

    assert result.returncode == 1
    assert result.stderr.startswith("peekapi-otel report: ")
    assert str(db) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_control_characters_from_requests_are_printed_escaped(
    serve_factory: Any, tmp_path: Path
) -> None:
    # Any anonymous request to the instrumented app can put these in a path or a consumer.
    hostile = [
        make_event(1, path="/a\x1b]0;pwned\x07b", consumer="c\x1b[2J\x00d"),
        make_event(2, path="/x\u202eevil", consumer=None),
        make_event(3, path="/tab\there\r\nnext", consumer="\x9bcsi"),
    ]
    ingest = serve_factory()
    assert post(ingest.port, hostile)[0] == 200
    ingest.stop()

    result = subprocess.run(
        [*_serve.cli_command(), "report", "--db", str(ingest.db)],
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    out = result.stdout.decode("utf-8")
    for char in "\x1b\x07\x00\x9b\u202e\t\r":
        assert char not in out
    assert "/a\\x1b]0;pwned\\x07b" in out
    assert "c\\x1b[2J\\x00d" in out
    assert "/x\\u202eevil" in out
    assert "/tab\\x09here\\x0d\\x0anext" in out


def test_report_takes_a_range_and_filters(tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    store = EventStore(tmp_path / "e.db")
    store.insert_many(
        [
            {**_serve.make_event(n, consumer="alice" if n % 2 else "bob"), "timestamp": when}
            for n, when in enumerate(
                [(now - timedelta(minutes=m)).isoformat() for m in (1, 2, 3)]
                + [(now - timedelta(hours=30)).isoformat()]
            )
        ]
    )
    store.close()

    everything = run_report(tmp_path / "e.db")
    assert section(everything.stdout, "Totals")[0][0] == "4"
    assert not everything.stdout.startswith("Range:")
    recent = run_report(tmp_path / "e.db", "--range", "1h", "--consumer", "bob")
    assert recent.returncode == 0, recent.stderr
    assert recent.stdout.startswith("Range: last 1h (")
    assert "consumer=bob" in recent.stdout.splitlines()[0]
    assert section(recent.stdout, "Totals")[0][0] == "2"
    older = run_report(
        tmp_path / "e.db",
        "--from",
        (now - timedelta(days=2)).isoformat(),
        "--to",
        (now - timedelta(days=1)).isoformat(),
    )
    assert section(older.stdout, "Totals")[0][0] == "1"
    bad = run_report(tmp_path / "e.db", "--status", "7xx")
    assert bad.returncode == 2
    assert "status=" in bad.stderr
