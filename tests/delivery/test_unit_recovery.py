"""Recovery on its own: spooled segments drained through the sender, live batches first,
and what a drain does while the ingest fails or pauses."""

from __future__ import annotations

import json
from pathlib import Path

from delivery.layers import build, lines
from delivery.support import Scripted
from peekapi_otel.core._stats import stats
from peekapi_otel.delivery._transport import SendResult


def no_live() -> bool:
    return False


def test_drain_sends_every_spooled_event_and_removes_the_segments(tmp_path: Path) -> None:
    layers = build(tmp_path, batch_size=10)
    for _ in range(3):
        layers.recovery.keep(lines(10))
    layers.spool.close_segment()
    while layers.recovery.drain(no_live):
        pass
    assert sum(layers.transport.delivered().values()) == 30
    assert stats()["recovered"] == 30
    assert layers.spool.info().segments == 0


def test_live_batches_go_before_the_spool(tmp_path: Path) -> None:
    layers = build(tmp_path, batch_size=10)
    layers.recovery.keep(lines(20))
    layers.spool.close_segment()
    live = lines(10)
    with layers.outbox.lock:
        assert layers.outbox.put_locked(live)
    assert layers.recovery.drain(layers.loop.send_live)
    first = layers.transport.calls[0][1]
    assert [e["metadata"] for e in first] == [json.loads(line)["metadata"] for line in live]


def test_a_pause_stops_the_drain_and_keeps_the_rest_on_disk(tmp_path: Path) -> None:
    transport = Scripted(script=[SendResult(status=200), SendResult(status=401)])
    layers = build(tmp_path, transport, batch_size=10)
    layers.recovery.keep(lines(30))
    layers.spool.close_segment()
    assert layers.recovery.drain(no_live)
    assert len(transport.calls) == 2
    assert layers.spool.info().events == 20  # the paused batch and the one after it
    assert not layers.loop.step()  # paused: the sender does nothing until it ends
    assert len(transport.calls) == 2


def test_lines_delivered_after_a_takeover_are_not_sent_again(tmp_path: Path) -> None:
    layers = build(tmp_path, batch_size=10)
    batch = lines(10)
    layers.recovery.keep(batch)  # taken over and spooled...
    layers.spool.close_segment()
    layers.recovery.delivered_on_disk.update(batch)  # ...then its POST was acknowledged
    assert layers.recovery.drain(no_live)
    assert layers.transport.calls == []
    assert layers.spool.info().segments == 0


def test_at_shutdown_only_what_this_process_spooled_is_drained(tmp_path: Path) -> None:
    layers = build(tmp_path, batch_size=10)
    layers.control.stop.set()
    layers.control.deadline = layers.clock.now() + 5.0
    assert not layers.recovery.may_drain()  # another process's segments wait for it
    layers.recovery.keep(lines(1))
    assert layers.recovery.may_drain()
    layers.clock.t += 5.0
    assert not layers.recovery.may_drain()  # past the deadline
