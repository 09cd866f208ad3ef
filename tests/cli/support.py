"""Running the ``peekapi-otel`` console script as a real process, for the CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def console_script() -> str:
    """The ``peekapi-otel`` script installed next to this interpreter."""
    return str(Path(sys.executable).parent / "peekapi-otel")


@dataclass
class Result:
    code: int
    out: str
    err: str
    seconds: float

    @property
    def text(self) -> str:
        return self.out + self.err


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30.0) -> Result:
    """Run the console script; the process is killed by its PID if it outlives ``timeout``."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [console_script(), *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, 9)
            proc.communicate(timeout=10)
    return Result(proc.returncode, out, err, time.monotonic() - started)
