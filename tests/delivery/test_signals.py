"""SIGTERM loses nothing (SPEC §6 "Shutdown"): what was in memory is delivered on the
way out, or spooled and delivered by the next process. Servers run for real; SIGTERM is
sent by PID."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from delivery.support import (
    BIN,
    Proc,
    child_env,
    duplicates,
    processes,
    wait_until,
    worker,
)
from ingest import Ingest, free_port  # type: ignore[import-not-found]

GRACE = 10.0  # shutdown_timeout (5 s) plus the server's own shutdown


def _serve_and_terminate(
    ingest: Ingest, tmp_path: Path, args: list[str], requests: int = 40
) -> tuple[int, int, Proc]:
    """Start a server, send requests, SIGTERM it. Returns how many events to expect, and
    how many more there may be: a start-up probe that timed out on our side may still
    have been handled by a worker that was slow to start."""
    port = free_port()
    args = [a.replace("{port}", str(port)) for a in args]
    env = child_env(ingest.url, tmp_path, PEEKAPI_FLUSH_INTERVAL="30")
    server = Proc(args, env, cwd=Path(__file__).parent / "apps")
    url = f"http://127.0.0.1:{port}"
    answered: list[int] = []
    unanswered: list[str] = []

    def up() -> bool:
        try:
            # gunicorn listens before its workers have booted: the probe waits in the
            # backlog until one has, and one that timed out may still be handled later.
            status = httpx.get(f"{url}/items/0", timeout=10).status_code
        except httpx.TimeoutException as exc:
            unanswered.append(type(exc).__name__)
            return False
        except httpx.HTTPError:
            return False
        answered.append(status)
        return status == 200

    try:
        assert wait_until(up, 30, step=0.1), server.output()
        with httpx.Client() as client:
            for i in range(requests):
                assert client.get(f"{url}/items/{i}").status_code == 200
        server.signal(signal.SIGTERM)
        start = time.monotonic()
        server.wait(GRACE + 5)
        assert time.monotonic() - start < GRACE, server.output()
    finally:
        server.stop()
    return requests + len(answered), len(unanswered), server


def _deliver_leftovers(ingest: Ingest, tmp_path: Path, expected: int) -> int:
    """How many events came before a restart; then a restarted process sends the rest."""
    time.sleep(0.3)
    direct = len(ingest.keys())
    if direct < expected:
        with processes() as started:
            idle = worker(started, ingest.url, tmp_path, "idle", "--fast")
            wait_until(lambda: len(ingest.keys()) >= expected, 20)
            idle.signal(signal.SIGTERM)
            idle.wait(10)
    return direct


UVICORN = str(BIN / "uvicorn")
GUNICORN = str(BIN / "gunicorn")


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        [UVICORN, "fastapi_app:app", "--port", "{port}"],
        [UVICORN, "fastapi_app:app", "--port", "{port}", "--workers", "2"],
        [GUNICORN, "-w", "2", "-b", "127.0.0.1:{port}", "flask_app:app"],
        [
            GUNICORN,
            "-k",
            "uvicorn.workers.UvicornWorker",
            "-w",
            "2",
            "-b",
            "127.0.0.1:{port}",
            "fastapi_app:app",
        ],
        [
            GUNICORN,
            "--preload",
            "-k",
            "uvicorn.workers.UvicornWorker",
            "-w",
            "2",
            "-b",
            "127.0.0.1:{port}",
            "fastapi_app:app",
        ],
    ],
    ids=[
        "uvicorn",
        "uvicorn-workers",
        "gunicorn-sync",
        "gunicorn-uvicornworker",
        "gunicorn-uvicornworker-preload",
    ],
)
def test_sigterm_loses_nothing(ingest: Ingest, tmp_path: Path, args: list[str]) -> None:
    expected, maybe, server = _serve_and_terminate(ingest, tmp_path, args)
    direct = _deliver_leftovers(ingest, tmp_path, expected)
    got = ingest.keys()
    assert expected <= len(got) <= expected + maybe, (direct, maybe, server.output())
    assert duplicates(got) == 0
    # Every server here lets the exit flush run (or the SIGTERM flush plus its drain).
    assert direct == len(got), f"only {direct}/{len(got)} before the restart"


@pytest.mark.slow
def test_sigterm_inside_our_code_does_not_deadlock(ingest: Ingest, tmp_path: Path) -> None:
    """The main thread spends nearly all its time in ``submit`` when SIGTERM comes; the
    exit must neither hang nor lose what was submitted."""
    for attempt in range(6):
        keys_file = tmp_path / f"keys{attempt}"
        with processes() as started:
            proc = worker(
                started,
                ingest.url,
                tmp_path,
                "hammer",
                "--count",
                "20000",
                "--keys",
                str(keys_file),
                PEEKAPI_FLUSH_INTERVAL="30",
                PEEKAPI_SHUTDOWN_TIMEOUT="5",
            )
            proc.wait_line("ready", 30)
            time.sleep(0.003 * attempt)
            proc.signal(signal.SIGTERM)
            start = time.monotonic()
            assert proc.wait(5 + 3) == 143, proc.output()
            assert time.monotonic() - start < 5 + 2
        done = int(Path(f"{keys_file}.done").read_text())
        ordered = _ordered_keys(keys_file)
        got = set(ingest.keys())
        # The submit interrupted by the signal may have queued its event, or not.
        assert set(ordered[:done]) <= got, f"attempt {attempt}: lost events"
        assert not (set(ordered[done + 1 :]) & got)
    assert duplicates(ingest.keys()) == 0


def _ordered_keys(path: Path) -> list[tuple[str, str]]:
    out = []
    for line in path.read_text().splitlines():
        trace_id, _, span_id = line.partition(" ")
        out.append((trace_id, span_id))
    return out


_SWALLOWED = """
import atexit, signal, time, weakref
import peekapi_otel
from opentelemetry import trace
from opentelemetry.trace import SpanKind

peekapi_otel.configure()
atexit.register(lambda: print("atexit ran", flush=True))
tracer = trace.get_tracer("t")
with tracer.start_as_current_span(
    "GET /x", kind=SpanKind.SERVER,
    attributes={"http.request.method": "GET", "url.path": "/x", "http.response.status_code": 200},
):
    pass

class Box:
    pass

def callback(_ref):
    signal.raise_signal(signal.SIGTERM)
    sum(range(10))  # the handler runs at this call, inside a callback that ignores exceptions

box = Box()
ref = weakref.ref(box, callback)
del box
for _ in range(200):
    time.sleep(0.01)
print("still running", flush=True)
"""


def test_sigterm_handled_where_exceptions_are_ignored(ingest: Ingest, tmp_path: Path) -> None:
    """uvicorn re-raises SIGTERM after its shutdown; the handler can then run inside a
    weakref callback, where a ``SystemExit`` is printed and dropped. The exit must still
    happen, quietly, through atexit."""
    script = tmp_path / "swallowed.py"
    script.write_text(_SWALLOWED)
    done = subprocess.run(
        [sys.executable, str(script)],
        env=child_env(ingest.url, tmp_path / "spool"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 143, done.stdout + done.stderr
    assert "atexit ran" in done.stdout
    assert "still running" not in done.stdout
    assert "Exception ignored" not in done.stderr, done.stderr
    assert len(ingest.keys()) == 1  # the exit flush delivered the one event


_SLOW_START = """
import sys, time
from peekapi_otel.delivery import _shutdown
assert _shutdown.install_sigterm_handler()
print("starting", flush=True)
for _ in range(3000):  # a slow start-up, bounded: at most 30 s
    time.sleep(0.01)
print("started", flush=True)
"""


def test_sigterm_while_the_interpreter_starts(tmp_path: Path) -> None:
    """A worker that a server restarts and stops at once gets SIGTERM while
    ``sitecustomize`` (where the distro installs the handler) still runs. It must end by
    the signal, as without us, not with a fatal start-up error."""
    (tmp_path / "sitecustomize.py").write_text(_SLOW_START)
    env = child_env("http://127.0.0.1:9/v1/events", tmp_path / "spool")
    env["PYTHONPATH"] = str(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", "print('app ran', flush=True)"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "starting"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGTERM, out + err
    assert "started" not in out
    assert "app ran" not in out
    assert "Fatal Python error" not in err, err
    assert "Traceback" not in err, err
