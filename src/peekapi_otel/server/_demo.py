"""``peekapi-otel demo``: the whole product on one machine, in under a minute.

Starts ``serve`` on a free port, runs ``examples/fastapi`` under
``opentelemetry-instrument uvicorn`` against it, drives traffic from several consumers,
stops the ingest midway and starts it again, then prints the report and checks that every
request arrived exactly once. Every process it starts is stopped by its PID.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final

from peekapi_otel.server._report import render
from peekapi_otel.server._store import EventStore

_API_KEY: Final = "demo-project-key"
_CONSUMERS: Final[tuple[dict[str, str], ...]] = (
    {"x-api-key": "acme-live-4f2a"},
    {"x-api-key": "globex-live-9b1c"},
    {"x-api-key": "initech-test-77d0"},
    {"authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.demo"},
    {},
)
_THREADS: Final = 4
_DELIVERY_TIMEOUT: Final = 60.0
_FLUSH_INTERVAL: Final = 1.0
# The ingest stays down at least this long, so the app's sends really fail and are
# retried even when the traffic is over in a moment.
_MIN_OUTAGE: Final = 3 * _FLUSH_INTERVAL


def _say(message: str) -> None:
    print(message, flush=True)


def _example_dir() -> Path:
    here = Path(__file__).resolve()
    for candidate in (
        here.parents[3] / "examples" / "fastapi",
        here.parents[1] / "_examples" / "fastapi",
    ):
        if (candidate / "app.py").is_file():
            return candidate
    raise FileNotFoundError("examples/fastapi/app.py not found next to the package")


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name} not found; install the demo's requirements: "
            'pip install "peekapi-otel[fastapi]" uvicorn'
        )
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f}s")


def _stop(proc: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class _Ingest:
    def __init__(self, db: Path, port: int, log: IO[bytes]) -> None:
        self.db, self.port, self._log = db, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/events"

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return  # already running: a second serve could not bind and this one would leak
        self.proc = subprocess.Popen(
            [
                sys.executable,
                *("-m", "peekapi_otel.server._cli", "serve", "--port", str(self.port)),
                *("--db", str(self.db), "--api-key", _API_KEY),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        _wait_port(self.port, self.proc, 20)

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None


class _Traffic:
    """Request threads over keep-alive connections; counts what the app answered."""

    def __init__(self, port: int, total: int) -> None:
        self.port, self.total = port, total
        self.done = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._next = 0

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= self.total:
                return None
            self._next += 1
            return self._next - 1

    def _request(self, i: int) -> tuple[str, str, bytes | None, dict[str, str]]:
        headers = dict(_CONSUMERS[(i // 3) % len(_CONSUMERS)])
        kind = i % 10
        if kind < 6:
            return "GET", f"/items/{1 + i % 2}", None, headers
        if kind < 8:
            body = json.dumps({"name": f"item-{i}", "price": i % 50}).encode()
            headers["content-type"] = "application/json"
            return "POST", "/items", body, headers
        if kind == 8:
            return "GET", f"/items/{1000 + i}", None, headers
        return "GET", "/health", None, headers

    def worker(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            while (i := self._take()) is not None:
                method, path, body, headers = self._request(i)
                try:
                    conn.request(method, path, body=body, headers=headers)
                    conn.getresponse().read()
                    ok = True
                except (OSError, http.client.HTTPException):
                    conn.close()
                    ok = False
                with self._lock:
                    self.done += 1
                    self.failed += not ok
        finally:
            conn.close()

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self.worker, daemon=True) for _ in range(_THREADS)]
        for thread in threads:
            thread.start()
        return threads


class _Bar:
    """A redrawn progress bar on a terminal; one line per quarter in logs and CI."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, max(total, 1)
        self._tty = sys.stdout.isatty()
        self._open = False  # a redrawn line without its newline yet
        self._shown: int | None = None

    def _line(self, done: int) -> str:
        width = 40
        filled = min(int(width * done / self.total), width)
        return f"  {self.label:<10} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}"

    def update(self, done: int) -> None:
        if self._tty:
            sys.stdout.write("\r" + self._line(done))
            self._open = True
        else:
            quarter = 4 * done // self.total
            if quarter == self._shown:
                return
            self._shown = quarter
            sys.stdout.write(self._line(done) + "\n")
        sys.stdout.flush()

    def interrupt(self) -> None:
        """End the redrawn line so that a message can be printed below it."""
        if self._open:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self._open = False

    def finish(self, done: int) -> None:
        self.update(done)
        self.interrupt()


@contextmanager
def _workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="peekapi-demo-"))
    try:
        yield path
    finally:
        if keep:
            _say(f"kept: {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def _tail(path: Path, lines: int = 30) -> None:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return
    print("\n".join(["--- last lines of the demo log ---", *text]), file=sys.stderr)


def _count(db: Path) -> int:
    try:
        store = EventStore(db, create=False)
    except Exception:  # noqa: BLE001 - the ingest may be between restarts
        return 0
    try:
        return store.count()
    finally:
        store.close()


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM would end the demo without running its finally blocks, leaving the ingest
    # and the app running: turn it into an exit that cleans up.
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _terminate)
        # Ctrl-C (or kill -INT) stops the demo even when it was started with SIGINT
        # ignored, as a shell does for a command it runs in the background.
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _run(int(args.requests), bool(args.keep), bool(getattr(args, "serve", False)))
    except KeyboardInterrupt:
        print("\npeekapi-otel demo: interrupted; stopped what it started", file=sys.stderr)
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _keep_dashboard_open(ingest: _Ingest) -> None:
    """Serve the demo's database until Ctrl-C (or SIGTERM, which exits through finally)."""
    ingest.start()
    _say(f"dashboard  http://127.0.0.1:{ingest.port}/ shows this run; press Ctrl-C to stop")
    try:
        while ingest.proc is not None and ingest.proc.poll() is None:
            time.sleep(0.2)
    except KeyboardInterrupt:
        _say("")
    if ingest.proc is not None and ingest.proc.returncode not in (None, 0):
        raise RuntimeError(f"the dashboard's ingest exited with {ingest.proc.returncode}")


def _how_to_view(db: Path, keep: bool) -> None:
    if keep:
        _say(f"view it again: peekapi-otel serve --db {db}  (then open http://127.0.0.1:8787/)")
    else:
        _say(
            "the dashboard ended with the demo: peekapi-otel demo --serve keeps it open, "
            "--keep keeps the database"
        )


def _run(total: int, keep: bool, serve: bool = False) -> int:
    with _workdir(keep) as work:
        log = open(work / "demo.log", "wb")  # noqa: SIM115 - closed in finally below
        db = work / "events.db"
        ingest = _Ingest(db, _free_port(), log)
        app: subprocess.Popen[bytes] | None = None
        failed = True
        try:
            _say("peekapi-otel demo")
            ingest.start()
            _say(
                f"  ingest     peekapi-otel serve on {ingest.url} "
                f"(dashboard at http://127.0.0.1:{ingest.port}/ while the demo runs)"
            )
            port = _free_port()
            env = {
                **os.environ,
                "PEEKAPI_API_KEY": _API_KEY,
                "PEEKAPI_ENDPOINT": ingest.url,
                "PEEKAPI_FLUSH_INTERVAL": f"{_FLUSH_INTERVAL:g}",
                "PEEKAPI_STORAGE_PATH": str(work / "spool"),
            }
            app = subprocess.Popen(
                [
                    *(_tool("opentelemetry-instrument"), _tool("uvicorn"), "app:app"),
                    *("--host", "127.0.0.1", "--port", str(port), "--no-access-log"),
                ],
                cwd=_example_dir(),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            _wait_port(port, app, 30)
            _say(
                f"  app        opentelemetry-instrument uvicorn app:app "
                f"(examples/fastapi) on 127.0.0.1:{port}"
            )
            traffic = _Traffic(port, total)
            threads = traffic.start()
            bar = _Bar("traffic", total)
            outage_at, back_at = total // 2, (total * 3) // 4
            stopped_at: float | None = None
            restarted = False

            def outage() -> None:
                nonlocal stopped_at
                ingest.stop()
                stopped_at = time.monotonic()
                bar.interrupt()
                _say("  outage     ingest stopped: the app keeps serving, its events wait")

            def recovery() -> None:
                nonlocal restarted
                ingest.start()
                restarted = True
                bar.interrupt()
                _say("  recovery   ingest started again on the same port and database")

            deadline = time.monotonic() + 120
            while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
                bar.update(traffic.done)
                if stopped_at is None and traffic.done >= outage_at:
                    outage()
                if (
                    stopped_at is not None
                    and not restarted
                    and traffic.done >= back_at
                    and time.monotonic() - stopped_at >= _MIN_OUTAGE
                ):
                    recovery()
                time.sleep(0.05)
            for thread in threads:
                thread.join(max(deadline - time.monotonic(), 0.1))
            bar.finish(traffic.done)
            # Fast traffic can end between two looks: the outage and recovery still happen.
            if stopped_at is None:
                outage()
            if not restarted:
                assert stopped_at is not None
                time.sleep(max(_MIN_OUTAGE - (time.monotonic() - stopped_at), 0))
                recovery()
            delivered = 0
            bar = _Bar("delivered", total)
            deadline = time.monotonic() + _DELIVERY_TIMEOUT
            while time.monotonic() < deadline:
                delivered = _count(db)
                bar.update(delivered)
                if delivered >= total:
                    break
                time.sleep(0.5)
            bar.finish(delivered)
            _stop(app)
            app = None
            delivered = _count(db)
            store = EventStore(db, create=False)
            try:
                summary = store.summary()
                pairs = store.pairs()
                duplicates = store.duplicates()
            finally:
                store.close()
            ingest.stop()
            _say("")
            _say(render(summary, latest=5))
            unique = len(set(pairs))
            answered = traffic.done - traffic.failed
            ok = delivered == answered == total and unique == delivered
            verdict = "every request arrived exactly once" if ok else "MISMATCH"
            _say(
                f"{total} requests sent, {answered} answered by the app, {delivered} events "
                f"at the ingest, {unique} unique trace/span pairs: {verdict}"
            )
            _say(
                f"duplicate deliveries the ingest dropped by trace/span pair: {duplicates} "
                "(delivery is at least once; the pair makes it exactly once at the ingest)"
            )
            failed = not ok
            if serve:
                _keep_dashboard_open(ingest)
                ingest.stop()
            _how_to_view(db, keep)
            return 0 if ok else 1
        except (OSError, RuntimeError, TimeoutError, sqlite3.Error) as exc:
            print(f"\npeekapi-otel demo: {exc}", file=sys.stderr)
            return 1
        finally:
            _stop(app)
            ingest.stop()
            log.close()
            if failed:
                _tail(work / "demo.log")
