"""Three ``serve`` nodes writing one PostgreSQL database, each fed by an app's delivery
pipeline, while the node evaluating the alerts is SIGKILLed and started again on its
port: every event the apps made is stored exactly once, and another node takes over the
alerts."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from pg import free_port
from server.postgres.support import Serve

pytestmark = pytest.mark.slow

EXPORTER = Path(__file__).with_name("fleet_exporter.py")
NODES = 3
SECONDS = 8.0
TIMEOUT = 240.0
LEADING = "now evaluates the alerts"


def _stored(url: str) -> tuple[int, set[tuple[str, str]]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT trace_id, span_id FROM events").fetchall()
    return len(rows), {(str(t), str(s)) for t, s in rows}


def _line(proc: subprocess.Popen[str], prefix: str, timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
            if not line:
                break
    raise AssertionError(f"no {prefix!r} line from the exporter (exit {proc.poll()})")


@pytest.mark.timeout(600)
def test_a_killed_node_loses_and_doubles_nothing(pg_url: str, tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.toml"
    alerts.write_text(
        '[settings]\ninterval = "1s"\n\n[channels.hook]\ntype = "webhook"\n'
        'url = "http://127.0.0.1:9/unused"\n\n[[rules]]\nname = "never"\n'
        'kind = "error_rate"\nendpoint = "GET /never"\nthreshold = 50\nwindow = "1m"\n'
    )
    ports = [free_port() for _ in range(NODES)]
    nodes = [
        Serve(pg_url, tmp_path / f"node{i}.log", "--port", str(p), "--alerts", str(alerts))
        for i, p in enumerate(ports)
    ]
    exporters: list[subprocess.Popen[str]] = []
    try:
        for i, port in enumerate(ports):
            exporters.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(EXPORTER),
                        f"http://127.0.0.1:{port}/v1/events",
                        "--keys",
                        str(tmp_path / f"keys{i}"),
                        "--spool",
                        str(tmp_path / f"spool{i}"),
                        "--seconds",
                        str(SECONDS),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for proc in exporters:
            _line(proc, "started", 60)
        # Killed once it has stored a part of the traffic, started again a moment later.
        deadline = time.monotonic() + 60
        while _stored(pg_url)[0] < 2000 and time.monotonic() < deadline:
            time.sleep(0.1)
        # The first evaluation may come after those events on a loaded machine.
        deadline = time.monotonic() + 60
        while len(leaders := [i for i, n in enumerate(nodes) if LEADING in n.stderr()]) != 1:
            assert time.monotonic() < deadline, f"nodes evaluating the alerts: {leaders}"
            time.sleep(0.1)
        (leader,) = leaders
        nodes[leader].kill()
        time.sleep(1.0)
        nodes[leader] = Serve(
            pg_url, tmp_path / "again.log", "--port", str(ports[leader]), "--alerts", str(alerts)
        )
        deadline = time.monotonic() + 60
        while not any(LEADING in node.stderr() for node in nodes):
            assert time.monotonic() < deadline, "no node took over the alerts"
            time.sleep(0.1)
        flushed = [json.loads(_line(proc, "flushed ", TIMEOUT)) for proc in exporters]
        for proc in exporters:
            assert proc.wait(timeout=60) == 0
    finally:
        for proc in exporters:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
            if proc.stdout is not None:
                proc.stdout.close()
        for node in nodes:
            node.stop()
    made: set[tuple[str, str]] = set()
    for i in range(NODES):
        for line in (tmp_path / f"keys{i}").read_text().splitlines():
            trace_id, span_id = line.split()
            made.add((trace_id, span_id))
    assert all(f["ok"] for f in flushed), flushed
    assert sum(f["sent"] for f in flushed) == len(made)
    rows, stored = _stored(pg_url)
    assert stored == made  # nothing lost
    assert rows == len(made)  # nothing doubled
    with psycopg.connect(pg_url) as conn:
        duplicates = conn.execute("SELECT value FROM counters WHERE name = 'duplicates'")
        turned_away = (duplicates.fetchone() or (0,))[0]
    print(f"fleet: {rows} events stored once each, {turned_away} resent ones turned away")
