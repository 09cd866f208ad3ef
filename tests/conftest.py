from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ingest import Ingest
from peekapi_otel.core._guard import _Guard
from peekapi_otel.core._stats import STATS
from peekapi_otel.testing import reset_process_state


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test starts with no PEEKAPI_*/OTEL_* settings and its own spool root."""
    for key in list(os.environ):
        if key.startswith(("PEEKAPI_", "OTEL_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


class InternalErrors(list[BaseException]):
    """Set ``expected = True`` in a test that forces an internal error on purpose."""

    expected = False


@pytest.fixture(autouse=True)
def internal_errors() -> Iterator[InternalErrors]:
    """Errors our guard swallowed in the app's threads fail the test at teardown."""
    errors = InternalErrors()
    previous = _Guard.handler
    _Guard.handler = staticmethod(errors.append)  # type: ignore[assignment]
    STATS.reset()
    yield errors
    # Processors a test left on its providers must not hold the consumer rule (or the
    # patches) for the tests after it.
    reset_process_state()
    _Guard.handler = previous  # type: ignore[assignment]
    if errors and not errors.expected:
        raise errors[0]


@pytest.fixture
def ingest() -> Iterator[Ingest]:
    server = Ingest().start()
    yield server
    server.stop()
