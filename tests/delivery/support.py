"""Shared helpers for the delivery tests: real spans, fast options, scripted transports,
and subprocesses that are always stopped by their PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import SpanKind

from peekapi_otel.core._encoder import EventEncoder
from peekapi_otel.core._options import Options
from peekapi_otel.core._record import record_of_span
from peekapi_otel.delivery._retry import RetryPolicy
from peekapi_otel.delivery._transport import SendResult

HERE = Path(__file__).parent
TESTS = HERE.parent
ROOT = TESTS.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent
WORKER = HERE / "worker.py"
API_KEY = "test-key"

_PROVIDER = TracerProvider()
_TRACER = _PROVIDER.get_tracer("peekapi-delivery-tests")


def make_span(
    path: str = "/items/1", status: int = 200, route: str = "/items/{item_id}"
) -> ReadableSpan:
    """A finished local-root HTTP SERVER span, as the instrumentation would make it."""
    span = _TRACER.start_span(
        f"GET {path}",
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "GET",
            "url.path": path,
            "http.route": route,
            "http.response.status_code": status,
        },
    )
    span.end()
    return span  # type: ignore[return-value]


def event_lines(n: int) -> list[bytes]:
    """``n`` event lines of distinct request spans, as the encoder writes them."""
    encoder = EventEncoder()
    out = []
    for _ in range(n):
        line = encoder.encode(record_of_span(make_span()))
        assert line is not None
        out.append(line)
    return out


def key_of(span: ReadableSpan) -> tuple[str, str]:
    ctx = span.context
    assert ctx is not None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def options(endpoint: str, storage: Path, **overrides: Any) -> Options:
    settings: dict[str, Any] = {
        "api_key": API_KEY,
        "endpoint": endpoint,
        "storage_path": str(storage),
        "flush_interval": 0.1,
        "timeout": 2.0,
        "shutdown_timeout": 3.0,
        **overrides,
    }
    return Options.from_env({}, **settings)


def fast_policy(seed: int = 1, **overrides: Any) -> RetryPolicy:
    import random

    values: dict[str, Any] = {"base": 0.05, "cap": 0.3, "rng": random.Random(seed)}
    values.update(overrides)
    return RetryPolicy(**values)


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def dropped(stats: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in stats["dropped"].items() if v}


def duplicates(keys: Counter[tuple[str, str]]) -> int:
    return sum(n - 1 for n in keys.values() if n > 1)


@dataclass
class Scripted:
    """A transport that answers from a script (then ``default``) and records each call."""

    script: list[SendResult] = field(default_factory=list)
    default: SendResult = field(default_factory=lambda: SendResult(status=200))
    responder: Callable[[list[dict[str, Any]]], SendResult] | None = None
    calls: list[tuple[float, list[dict[str, Any]], SendResult]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, body: bytes, timeout: float) -> SendResult:
        events = json.loads(body)
        with self.lock:
            if self.script:
                result = self.script.pop(0)
            elif self.responder is not None:
                result = self.responder(events)
            else:
                result = self.default
            self.calls.append((time.monotonic(), events, result))
        return result

    def close(self) -> None:
        return None

    def delivered(self) -> Counter[tuple[str, str]]:
        with self.lock:
            calls = list(self.calls)
        return Counter(
            (e["metadata"]["trace_id"], e["metadata"]["span_id"])
            for _, events, result in calls
            if result.ok
            for e in events
        )


class Proc:
    """A subprocess with its stdout read line by line in the background."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        self.args = args
        self.popen = subprocess.Popen(
            args,
            env=env,
            cwd=str(cwd) if cwd else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_line(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if line.startswith(prefix):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (
                    self.popen.poll() is not None and not self._reader.is_alive()
                ):
                    raise AssertionError(
                        f"no line {prefix!r} from {self.args} in {timeout}s; output:\n"
                        + "\n".join(self.lines[-60:])
                    )
                self._cond.wait(min(remaining, 0.1))

    def json_line(self, prefix: str, timeout: float) -> Any:
        return json.loads(self.wait_line(prefix, timeout)[len(prefix) :])

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        rc = self.popen.wait(timeout)
        self._reader.join(5)
        return rc

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> None:
        """Kill the process group this test started (by PID), if still running."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self._reader.join(5)


def child_env(endpoint: str, storage: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEEKAPI_", "OTEL_"))}
    env.update(
        {
            "PEEKAPI_API_KEY": API_KEY,
            "PEEKAPI_ENDPOINT": endpoint,
            "PEEKAPI_STORAGE_PATH": str(storage),
            "PYTHONPATH": os.pathsep.join([str(TESTS), str(HERE / "apps"), str(ROOT / "src")]),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@contextmanager
def processes() -> Iterator[list[Proc]]:
    """Every process appended here is stopped by its PID when the block ends."""
    started: list[Proc] = []
    try:
        yield started
    finally:
        for proc in started:
            proc.stop()


def worker(started: list[Proc], endpoint: str, storage: Path, *args: str, **env: str) -> Proc:
    proc = Proc([PYTHON, str(WORKER), *args], child_env(endpoint, storage, **env))
    started.append(proc)
    return proc


def read_keys(path: Path) -> set[tuple[str, str]]:
    keys: set[tuple[str, str]] = set()
    for file in sorted(path.parent.glob(path.name)):
        for line in file.read_text().splitlines():
            trace_id, _, span_id = line.partition(" ")
            if span_id:
                keys.add((trace_id, span_id))
    return keys
