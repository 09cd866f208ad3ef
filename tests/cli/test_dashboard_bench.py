"""A tiny run of ``benchmarks/dashboard.py``, so the benchmark keeps working (its figures
are not checked: the suite asserts nothing about speed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "dashboard.py"

pytestmark = pytest.mark.slow


def test_dashboard_benchmark_smoke(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARK),
            *("--events", "3000", "--repeat", "1", "--seconds", "1"),
            *("--pollers", "1", "--senders", "1", "--db", str(tmp_path / "bench.db")),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "built 3000 events" in result.stdout
    assert "/api/summary?range=7d " in result.stdout
    assert "events/s stored" in result.stdout
