"""Drop accounting: the first drop of a reason is logged with its cause, the rest are
summarised once a minute and at shutdown, whether or not another drop comes."""

from __future__ import annotations

import logging

import pytest

from peekapi_otel.core._stats import Stats


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]


def test_later_drops_are_summarised_on_the_timer(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="peekapi_otel")
    clock = Clock()
    stats = Stats(clock=clock)
    stats.drop("spool_full", 100, "No space left on device")
    for _ in range(160):
        clock.t += 0.1
        stats.drop("spool_full", 100)
    stats.drop("spool_full", 93)
    stats.summarise_drops()  # under a minute since the first warning: nothing yet
    assert len(messages(caplog)) == 1
    assert "dropped 100 event(s): spool_full" in messages(caplog)[0]
    clock.t = 61.0
    stats.summarise_drops()  # the batcher's timer; no further drop is needed
    assert len(messages(caplog)) == 2
    assert "{'spool_full': 16093} (in total: {'spool_full': 16193})" in messages(caplog)[1]
    clock.t = 200.0
    stats.summarise_drops()  # nothing new: nothing logged
    assert len(messages(caplog)) == 2


def test_shutdown_logs_what_is_left_at_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="peekapi_otel")
    stats = Stats(clock=Clock())
    stats.drop("queue_full", 1)
    stats.drop("queue_full", 509)
    stats.drop("rejected", 10, "ingest answered 400")
    stats.drop("rejected", 10)
    stats.summarise_drops(force=True)
    assert messages(caplog)[-1].endswith(
        "{'queue_full': 509, 'rejected': 10} (in total: {'queue_full': 510, 'rejected': 20})"
    )
