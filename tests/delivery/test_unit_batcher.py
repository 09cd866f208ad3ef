"""The batcher and the outbox on their own: batches cut, routed to memory or disk,
memory taken over. Driven step by step on the test's thread."""

from __future__ import annotations

import json
from pathlib import Path

from delivery.layers import DOWN, build, lines
from delivery.support import dropped, key_of, make_span, options
from peekapi_otel.core._record import Record, record_of_span
from peekapi_otel.core._stats import stats
from peekapi_otel.delivery._pipeline import Pipeline
from peekapi_otel.delivery._transport import SendResult


def test_full_batches_go_to_the_outbox_and_a_short_one_only_when_due(tmp_path: Path) -> None:
    layers = build(tmp_path, batch_size=10)
    layers.batcher.queue.extend(lines(25))
    layers.batcher.step(partial=False)
    assert [len(b) for b in layers.outbox.take_all()] == [10, 10]
    layers.batcher.step(partial=True)
    assert [len(b) for b in layers.outbox.take_all()] == [5]
    assert layers.control.sender_wake.is_set()
    assert layers.spool.info().events == 0


def test_overflow_over_max_buffer_size_goes_to_disk_and_asks_for_a_drain(tmp_path: Path) -> None:
    layers = build(tmp_path, batch_size=10, max_buffer_size=20)
    layers.control.recover_now = False
    layers.batcher.queue.extend(lines(50))
    layers.batcher.step(partial=True)
    assert [len(b) for b in layers.outbox.take_all()] == [10, 10]
    assert layers.spool.info().events == 30
    assert layers.control.recover_now
    assert stats()["spooled"] == 30


def test_while_the_ingest_fails_batches_go_to_disk(tmp_path: Path) -> None:
    layers = build(tmp_path, batch_size=10)
    layers.health.mark_failing(SendResult(status=503))
    layers.batcher.queue.extend(lines(20))
    layers.batcher.step(partial=True)
    assert layers.outbox.take_all() == []
    assert layers.spool.info().events == 20


def test_the_batches_of_one_step_go_to_disk_in_one_write(tmp_path: Path) -> None:
    """A segment is closed once a write takes it past its cap (4 KiB for this small
    spool), so a write per batch would leave a segment per batch here: one write per
    step keeps the batcher ahead of a burst during an outage."""
    layers = build(tmp_path, batch_size=10, max_storage_bytes=64 * 1024)
    layers.health.mark_failing(SendResult(status=503))
    first = lines(100)
    assert sum(len(line) + 1 for line in first[:20]) > 4096  # two batches fill a segment
    layers.batcher.queue.extend(first)
    layers.batcher.step(partial=True)
    layers.batcher.queue.extend(lines(10))
    layers.batcher.step(partial=True)  # the next write opens the next segment
    layers.spool.close_segment()
    segments = sorted(layers.spool.directory.glob("seg-*.jsonl"))
    assert [len(p.read_bytes().splitlines()) for p in segments] == [100, 10]
    assert stats()["spooled"] == 110


def test_while_paused_batches_go_to_disk(tmp_path: Path) -> None:
    layers = build(tmp_path, batch_size=10)
    layers.health.pause(SendResult(status=401))
    layers.batcher.queue.extend(lines(10))
    layers.batcher.step(partial=True)
    assert layers.outbox.take_all() == []
    assert layers.spool.info().events == 10
    layers.clock.t += 301  # the pause is over
    layers.batcher.queue.extend(lines(10))
    layers.batcher.step(partial=True)
    assert [len(b) for b in layers.outbox.take_all()] == [10]


def test_spill_takes_the_senders_batch_over_and_it_is_on_disk_once(tmp_path: Path) -> None:
    layers = build(tmp_path, batch_size=10)
    layers.batcher.queue.extend(lines(30))
    layers.batcher.step(partial=True)
    inflight = layers.outbox.take()
    assert inflight is not None
    layers.batcher.spill_memory()  # SIGTERM: memory to disk
    assert layers.spool.info().events == 30
    # The sender's POST failed after the takeover: it must not spool the batch again.
    assert not layers.outbox.settle(inflight, inflight, layers.recovery.keep)
    assert layers.spool.info().events == 30
    # Or it succeeded after all: its copy on disk is marked as delivered.
    assert layers.outbox.settle(inflight, [], layers.recovery.keep)


def test_an_oversize_line_is_counted_not_sent(tmp_path: Path) -> None:
    """A span over ``max_event_bytes`` (even without its metadata) is counted when it is
    encoded, and never reaches the spool."""
    span = make_span(path="/" + "x" * 5000, route="")
    roomy = Pipeline(options(DOWN, tmp_path), start=False)
    roomy.submit(record_of_span(span))
    small = Pipeline(options(DOWN, tmp_path / "small", max_event_bytes=200), start=False)
    small.submit(record_of_span(span))
    roomy.shutdown(timeout=0)  # no threads: what was queued goes to the spool
    small.shutdown(timeout=0)
    assert roomy.spool.info().events == 1
    assert small.spool.info().events == 0
    assert dropped(stats()) == {"oversize": 1}


def test_the_queue_holds_records_up_to_a_wake_then_lines(tmp_path: Path) -> None:
    """The batcher encodes the queued records; while it is behind (a wake's worth is
    queued) the request thread encodes instead, so queued records, which keep their
    span's attribute dict alive, stay bounded. Both give the same lines."""
    pipeline = Pipeline(options(DOWN, tmp_path, batch_size=10, max_buffer_size=50), start=False)
    spans = [make_span() for _ in range(80)]
    for span in spans:
        pipeline.submit(record_of_span(span))
    queued = list(pipeline._batcher.queue)
    assert [type(item) for item in queued] == [Record] * 50 + [bytes] * 30
    lines = pipeline._batcher.lines_of(queued)
    assert lines[50:] == queued[50:]
    keys = [json.loads(line)["metadata"]["span_id"] for line in lines]
    assert keys == [key_of(span)[1] for span in spans]
    pipeline.shutdown(timeout=0)  # no threads: the queue goes to the spool, encoded
    assert pipeline.spool.info().events == 80
    assert dropped(stats()) == {}


def test_a_record_that_cannot_be_encoded_is_counted_and_the_rest_go_on(tmp_path: Path) -> None:
    pipeline = Pipeline(options(DOWN, tmp_path), start=False)
    good = record_of_span(make_span())
    pipeline.submit(good)
    pipeline.submit(good._replace(trace_id="not an int"))  # type: ignore[arg-type]
    pipeline.submit(good)
    pipeline.shutdown(timeout=0)
    assert pipeline.spool.info().events == 2
    assert dropped(stats()) == {"internal_error": 1}
