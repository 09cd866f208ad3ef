"""The sender's outcome state machine with a scripted transport and a fake clock:
every wait is recorded instead of slept."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from delivery.layers import build, lines
from delivery.support import Scripted, dropped, fast_policy
from peekapi_otel.core._stats import stats
from peekapi_otel.delivery._transport import SendResult

S503 = SendResult(status=503)


def test_retries_with_backoff_until_the_ingest_answers(tmp_path: Path) -> None:
    transport = Scripted(script=[S503, S503, S503])
    layers = build(tmp_path, transport, policy=fast_policy(base=1.0, cap=8.0))
    start = layers.clock.now()
    assert layers.sender.deliver(lines(5), recovered=False) == []
    assert len(transport.calls) == 4
    waits = layers.clock.waits
    assert len(waits) == 3
    ceilings = [1.0, 2.0, 4.0]
    assert all(c / 20 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    assert layers.clock.now() == pytest.approx(start + sum(waits))
    assert stats()["retried"] == 15
    assert stats()["sent"] == 5
    assert layers.health.healthy


def test_after_the_last_attempt_the_ingest_is_failing_and_probed_later(tmp_path: Path) -> None:
    transport = Scripted(default=S503)
    layers = build(tmp_path, transport, policy=fast_policy(attempts=3))
    batch = lines(5)
    assert layers.sender.deliver(batch, recovered=False) is batch
    assert len(transport.calls) == 3
    assert not layers.health.healthy
    assert layers.health.next_probe > layers.clock.now()
    # Failing: one try per batch, no backoff waits.
    waits = len(layers.clock.waits)
    assert layers.sender.deliver(batch, recovered=False) is batch
    assert len(transport.calls) == 4
    assert len(layers.clock.waits) == waits


def test_retry_after_replaces_the_backoff(tmp_path: Path) -> None:
    transport = Scripted(script=[SendResult(status=429, retry_after=7.0)])
    layers = build(tmp_path, transport)
    assert layers.sender.deliver(lines(1), recovered=False) == []
    assert layers.clock.waits == [7.0]


def test_a_retry_that_would_pass_a_flush_deadline_is_not_made(tmp_path: Path) -> None:
    transport = Scripted(script=[SendResult(status=429, retry_after=30.0)])
    layers = build(tmp_path, transport)
    layers.control.flush_deadline = layers.clock.now() + 2.0
    batch = lines(3)
    assert layers.sender.deliver(batch, recovered=False) is batch  # kept: goes to disk
    assert len(transport.calls) == 1
    assert layers.clock.waits == []


def test_sigterm_stops_retrying(tmp_path: Path) -> None:
    transport = Scripted(default=S503)
    layers = build(tmp_path, transport)
    layers.control.terminating = True
    batch = lines(3)
    assert layers.sender.deliver(batch, recovered=False) is batch
    assert len(transport.calls) == 1


@pytest.mark.parametrize("status", [401, 403, 308])
def test_configuration_errors_pause_and_keep_the_batch(
    tmp_path: Path, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="peekapi_otel")
    transport = Scripted(script=[SendResult(status=status, location="https://x.example/")])
    layers = build(tmp_path, transport, pause=300.0)
    batch = lines(3)
    assert layers.sender.deliver(batch, recovered=False) is batch
    assert len(transport.calls) == 1
    assert layers.health.paused(layers.clock.now())
    assert not layers.health.paused(layers.clock.now() + 300.0)
    assert dropped(stats()) == {}
    # The message says how to send what is kept once the endpoint or key is fixed.
    assert f"--path {layers.spool.directory} --drain --to-current" in caplog.text


def test_a_redirect_message_masks_the_locations_user_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="peekapi_otel")
    moved = SendResult(status=302, location="https://user:s3cret@x.example/v1/events")
    layers = build(tmp_path, Scripted(script=[moved]), pause=300.0)
    layers.sender.deliver(lines(1), recovered=False)
    assert "redirect to 'https://***@x.example/v1/events'" in caplog.text
    assert "s3cret" not in caplog.text


def test_other_4xx_drops_the_batch_once(tmp_path: Path) -> None:
    transport = Scripted(script=[SendResult(status=422, excerpt="bad event")])
    layers = build(tmp_path, transport)
    assert layers.sender.deliver(lines(4), recovered=False) == []
    assert len(transport.calls) == 1
    assert dropped(stats()) == {"rejected": 4}


def test_413_splits_down_to_the_event_that_is_too_large(tmp_path: Path) -> None:
    batch = lines(4)
    too_large = batch[2]

    big = json.loads(too_large)["metadata"]

    def answer(events: list[dict[str, object]]) -> SendResult:
        too_much = any(e["metadata"] == big for e in events)
        return SendResult(status=413) if too_much else SendResult(status=200)

    transport = Scripted(responder=answer)
    layers = build(tmp_path, transport)
    assert layers.sender.deliver(batch, recovered=False) == []
    assert stats()["sent"] == 3
    assert dropped(stats()) == {"oversize": 1}


def test_the_answer_after_an_outage_asks_for_a_drain(tmp_path: Path) -> None:
    transport = Scripted(script=[S503])
    layers = build(tmp_path, transport, policy=fast_policy(attempts=1))
    batch = lines(2)
    assert layers.sender.deliver(batch, recovered=False) is batch
    layers.control.recover_now = False
    assert layers.sender.deliver(batch, recovered=False) == []
    assert layers.health.healthy
    assert layers.control.recover_now
