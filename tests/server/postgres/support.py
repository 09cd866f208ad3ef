"""``peekapi-otel serve --db postgresql://...`` as a real process, for the PostgreSQL tests."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

START_LINE = re.compile(r"^peekapi-otel ingest listening on http://127\.0\.0\.1:(\d+) ")
TIMEOUT = 60.0


def _script() -> str:
    return str(Path(sys.executable).parent / "peekapi-otel")


def event(i: int, node: str = "n") -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "/pay",
        "status_code": 200,
        "response_time_ms": 2.0,
        "request_size": 1,
        "response_size": 2,
        "consumer_id": "c1",
        "metadata": {"trace_id": f"{node}-{i:08d}".ljust(32, "0"), "span_id": f"{i:016x}"},
        "timestamp": "2026-12-03T08:00:00+00:00",
    }


class Serve:
    """One serve process; ``port`` is read from its start line."""

    def __init__(self, url: str, log: Path, *args: str, wait_start: bool = True) -> None:
        self.log = log
        with log.open("w") as err:
            self.proc = subprocess.Popen(
                [_script(), "serve", "--port", "0", "--db", url, *args],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env={**os.environ},
            )
        self.port = 0
        if wait_start:
            try:
                self.wait_started()
            except BaseException:
                self.stop()
                raise

    def wait_started(self, timeout: float = TIMEOUT) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                match = START_LINE.match(line)
                assert match, f"{line!r}\n{self.stderr()}"
                self.port = int(match.group(1))
                return
            if self.proc.poll() is not None:
                break
        raise RuntimeError(f"serve did not start: {self.stderr()}")

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def post(self, events: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        """(status, JSON reply) of one POST /v1/events."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v1/events",
            data=json.dumps(events).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read())

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=TIMEOUT)
        self._close()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=TIMEOUT)
        self._close()
        return self.proc.returncode

    def _close(self) -> None:
        if self.proc.stdout is not None:
            self.proc.stdout.close()
