"""Reaching PostgreSQL at start: a growing pause between attempts, each said on stderr
without the password, bounded by the wait; an unparsable URL fails at once."""

from __future__ import annotations

import io

import pytest

pytest.importorskip("psycopg", reason="psycopg 3 is not installed: pip install -e '.[dev]'")

from peekapi_otel.server.db._backend import StoreUnavailable
from peekapi_otel.server.db._pg_serve import connect_with_retry
from pg import free_port


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def test_pauses_grow_and_the_wait_bounds_them() -> None:
    url = f"postgresql://me:hunter2@127.0.0.1:{free_port()}/events"  # nothing listens
    fake, out = FakeTime(), io.StringIO()
    with pytest.raises(StoreUnavailable, match=r"after 7 attempts in 40s") as caught:
        connect_with_retry(url, 40, out=out, sleep=fake.sleep, clock=fake.clock)
    assert fake.pauses == [1, 2, 4, 8, 15, 10]
    lines = out.getvalue().splitlines()
    assert len(lines) == 6
    assert lines[0].startswith("peekapi-otel serve: cannot reach PostgreSQL at me@127.0.0.1:")
    assert lines[0].endswith("retrying in 1s")
    assert "hunter2" not in out.getvalue() + str(caught.value)


def test_an_invalid_url_fails_at_once() -> None:
    fake = FakeTime()
    with pytest.raises(StoreUnavailable, match="invalid PostgreSQL URL"):
        connect_with_retry(
            "postgresql://127.0.0.1/x?nosuchoption=1", 40, sleep=fake.sleep, clock=fake.clock
        )
    assert fake.pauses == []
