"""`peekapi-otel demo` end to end: ingest, instrumented app, outage, report, cleanup.

The demo runs in its own session (``start_new_session=True``), so every process it starts
shares its process group; after it exits that group must be empty, and no process may
still refer to its temp dir (``TMPDIR`` points into the test's tmp_path).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.support import console_script

pytestmark = pytest.mark.slow

GRACE = 10.0
VERDICT = "every request arrived exactly once"


@dataclass
class Demo:
    code: int
    out: str
    err: str
    seconds: float


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline:
            found.append(int(entry.name))
    return found


def _assert_nothing_left(pgid: int, tmp: Path) -> None:
    deadline = time.monotonic() + GRACE
    while _group_alive(pgid) or _processes_mentioning(str(tmp)):
        if time.monotonic() > deadline:
            left = _processes_mentioning(str(tmp))
            pytest.fail(f"processes left by the demo: group {pgid} alive, pids {left}")
        time.sleep(0.1)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


#: Starts a command with SIGINT ignored, as a shell starts a command it runs in the
#: background: the ignored disposition is kept across exec.
_SIGINT_IGNORED = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def _start(
    tmp: Path, *args: str, sigint_ignored: bool = False
) -> tuple[subprocess.Popen[bytes], Path, Path]:
    tmp.mkdir(exist_ok=True)
    out, err = tmp / "demo.out", tmp / "demo.err"
    launcher = [sys.executable, "-c", _SIGINT_IGNORED] if sigint_ignored else []
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [*launcher, console_script(), "demo", *args],
            env={**os.environ, "TMPDIR": str(tmp)},
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    return proc, out, err


def run_demo(tmp: Path, *args: str, timeout: float) -> Demo:
    started = time.monotonic()
    proc, out, err = _start(tmp, *args)
    try:
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"demo {args} took over {timeout} s:\n{out.read_text()}\n{err.read_text()}")
        seconds = time.monotonic() - started
        _assert_nothing_left(proc.pid, tmp)
    finally:
        _kill_group(proc.pid)
        if proc.poll() is None:
            proc.wait(10)
    return Demo(code, out.read_text(), err.read_text(), seconds)


def _check_output(demo: Demo, total: int) -> None:
    assert demo.code == 0, demo.out + demo.err
    out = demo.out
    assert out.startswith("peekapi-otel demo\n")
    assert re.search(r"ingest\s+peekapi-otel serve on http://127\.0\.0\.1:\d+/v1/events", out)
    assert "opentelemetry-instrument uvicorn app:app" in out
    outage = out.index("  outage     ingest stopped")
    recovery = out.index("  recovery   ingest started again")
    assert outage < recovery
    assert re.search(rf"traffic\s+\[#+\.*\] {total}/{total}", out)
    assert re.search(rf"delivered\s+\[#+\] {total}/{total}", out)
    for heading in ("Totals", "Endpoints", "Consumers", r"Latest \d+ requests"):
        assert re.search(rf"^{heading}$", out, re.M), heading
    assert re.search(rf"^\s+{total}\s+\d+\s+\d+\s+[\d.]+%", out, re.M)  # totals row
    if total >= 100:  # every kind of request and consumer was sent
        for path in ("/items/{item_id}", "/items", "/health"):
            assert path in out
        assert "(anonymous)" in out
        assert "hash_" in out
    assert (
        f"{total} requests sent, {total} answered by the app, {total} events at the ingest, "
        f"{total} unique trace/span pairs: {VERDICT}"
    ) in out
    assert re.search(
        rf"{VERDICT}\nduplicate deliveries the ingest dropped by trace/span pair: 0 .*\n"
        r"(dashboard  .+\n\n?)?"
        r"(view it again: peekapi-otel serve --db .+\n|the dashboard ended with the demo: .+\n)"
        r"(kept: .+\n)?$",
        out,
    )
    # Not a terminal: one line per step, no carriage-return redraws.
    assert "\r" not in out
    assert "MISMATCH" not in out


def test_demo_400(tmp_path: Path) -> None:
    demo = run_demo(tmp_path, "--requests", "400", timeout=60)
    _check_output(demo, 400)
    assert demo.seconds < 60
    assert not list(tmp_path.glob("peekapi-demo-*")), "temp dir not removed"


def test_demo_default_size(tmp_path: Path) -> None:
    demo = run_demo(tmp_path, timeout=90)
    _check_output(demo, 2000)
    assert demo.seconds < 60


def test_demo_tiny_still_has_outage_and_recovery(tmp_path: Path) -> None:
    # Traffic over before the first look: the outage and recovery must still happen, and
    # the ingest must not be started twice (the second could not bind and one would leak).
    demo = run_demo(tmp_path, "--requests", "3", "--keep", timeout=60)
    _check_output(demo, 3)
    kept = re.search(r"^kept: (.+)$", demo.out, re.M)
    assert kept, demo.out
    work = Path(kept.group(1))
    assert work.parent == tmp_path
    assert (work / "events.db").is_file()
    assert (work / "demo.log").is_file()
    # The exact command that shows the kept database again.
    assert f"view it again: peekapi-otel serve --db {work / 'events.db'}  (then open" in demo.out


def test_demo_400_says_how_to_keep_the_dashboard(tmp_path: Path) -> None:
    demo = run_demo(tmp_path, "--requests", "40", timeout=60)
    _check_output(demo, 40)
    assert "peekapi-otel demo --serve keeps it open" in demo.out


def test_demo_serve_keeps_the_dashboard_open_until_ctrl_c(tmp_path: Path) -> None:
    import http.client
    import json

    # Started with SIGINT ignored (a shell's background job, a CI runner): Ctrl-C must
    # stop it all the same.
    proc, out, err = _start(tmp_path, "--requests", "30", "--serve", sigint_ignored=True)
    try:
        deadline = time.monotonic() + 60
        while not (
            found := re.search(r"^dashboard  http://127\.0\.0\.1:(\d+)/ ", out.read_text(), re.M)
        ):
            assert proc.poll() is None, out.read_text() + err.read_text()
            assert time.monotonic() < deadline, "the demo never opened its dashboard"
            time.sleep(0.1)
        port = int(found.group(1))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/api/summary")
            summary = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        assert summary["totals"]["requests"] == 30
        assert sum(p["requests"] for p in summary["timeline"]) == 30
        os.kill(proc.pid, signal.SIGINT)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the demo did not stop on SIGINT:\n{out.read_text()}\n{err.read_text()}")
        assert code == 0, err.read_text()
        _assert_nothing_left(proc.pid, tmp_path)
        assert not list(tmp_path.glob("peekapi-demo-*")), "temp dir not removed"
    finally:
        _kill_group(proc.pid)
        if proc.poll() is None:
            proc.wait(10)
    _check_output(Demo(0, out.read_text(), err.read_text(), 0.0), 30)


def test_sigterm_stops_everything(tmp_path: Path) -> None:
    proc, out, err = _start(tmp_path, "--requests", "200000")
    try:
        deadline = time.monotonic() + 60
        while "traffic" not in out.read_text():
            assert proc.poll() is None, err.read_text()
            assert time.monotonic() < deadline, "demo never started its traffic"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=30)
        assert code != 0
        _assert_nothing_left(proc.pid, tmp_path)
        assert not list(tmp_path.glob("peekapi-demo-*")), "temp dir not removed"
    finally:
        _kill_group(proc.pid)
        if proc.poll() is None:
            proc.wait(10)
