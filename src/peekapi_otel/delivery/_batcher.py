"""The batcher thread: encodes the queued records in one go, cuts batches, and routes
each to the outbox (healthy ingest, room in memory) or to the spool."""

from __future__ import annotations

import logging
import random
from collections import deque

from peekapi_otel.core._encoder import EventEncoder
from peekapi_otel.core._options import Options
from peekapi_otel.core._record import Record
from peekapi_otel.core._stats import STATS
from peekapi_otel.delivery._clock import Clock
from peekapi_otel.delivery._control import TERMINATING_TICK, Control
from peekapi_otel.delivery._health import Health
from peekapi_otel.delivery._outbox import Batch, Outbox
from peekapi_otel.delivery._recovery import Recovery
from peekapi_otel.delivery._spool import Spool

_logger = logging.getLogger(__name__)


class Batcher:
    """Turns the hand-off queue into batches of ``batch_size`` event lines.

    The request threads queue records; this thread encodes them, a thousand at a time.
    The same encoding on the request thread, once per request between two requests'
    worth of OpenTelemetry's code, finds the encoder out of the CPU's caches: it cost
    3 to 5 us more CPU per request on raw ASGI (``benchmarks/run.py``). While the
    batcher is behind, ``Pipeline.submit`` queues the line instead (:meth:`line_of`),
    so the queue cannot hold more than a wake's worth of records.
    """

    def __init__(
        self,
        options: Options,
        outbox: Outbox,
        health: Health,
        recovery: Recovery,
        spool: Spool,
        control: Control,
        clock: Clock,
    ) -> None:
        self._options = options
        self._outbox = outbox
        self._health = health
        self._recovery = recovery
        self._spool = spool
        self._control = control
        self._clock = clock
        self._encode = EventEncoder(
            path_source=options.path_source,
            collect_query_string=options.collect_query_string,
            consumer_headers=options.consumer_headers,
            metadata=options.metadata,
            identify_consumer=options.identify_consumer,
            max_event_bytes=options.max_event_bytes,
        ).encode
        #: Filled by ``Pipeline.submit`` (deque appends need no lock), emptied here.
        self.queue: deque[bytes | Record] = deque()
        self._pending: Batch = []  # lines not yet cut into a batch; this thread only

    def run(self) -> None:
        """The ``peekapi-batcher`` thread: wakes on a full queue, a flush, shutdown,
        SIGTERM or every ``flush_interval``."""
        control, clock, outbox = self._control, self._clock, self._outbox
        interval = self._options.flush_interval
        next_flush = clock.now() + interval
        while True:
            control.batcher_wake.clear()
            stopping = control.stop.is_set()
            try:
                flush_to = outbox.flush_requested()
                now = clock.now()
                terminating = control.terminating
                flushing = flush_to != outbox.flushed
                due = now >= next_flush or flushing or stopping or terminating
                self.step(partial=due)
                if terminating:
                    self.spill_memory()
                if due and now >= next_flush:
                    next_flush = now + interval + random.uniform(0, interval * 0.1)
                    self._spool.close_segment(idle_for=interval)
                    STATS.summarise_drops()
                if flushing:
                    outbox.mark_flushed(flush_to)
            except Exception:  # the thread must survive anything
                _logger.exception("peekapi-otel batcher error")
            if stopping:
                return
            wait = max(next_flush - clock.now(), 0.0)
            if control.terminating:
                wait = min(wait, TERMINATING_TICK)
            clock.wait(control.batcher_wake, wait)

    def step(self, *, partial: bool) -> None:
        """Encode what is queued and route every full batch (and, if ``partial``, the
        last short one)."""
        self.take_queue()
        self._cut_batches(partial)

    def take_queue(self) -> None:
        queue = self.queue
        self._pending.extend(self.lines_of([queue.popleft() for _ in range(len(queue))]))

    def take_pending(self) -> Batch:
        """The lines not cut into a batch yet (shutdown puts them on disk)."""
        pending, self._pending = self._pending, []
        return pending

    # --- encoding ----------------------------------------------------------------------

    def lines_of(self, items: list[bytes | Record]) -> Batch:
        """The event lines of queued items; what cannot be encoded is counted."""
        line_of = self.line_of
        lines: Batch = []
        for item in items:
            line = item if isinstance(item, bytes) else line_of(item)
            if line is not None:
                lines.append(line)
        return lines

    def line_of(self, record: Record) -> bytes | None:
        """The record's event line, or ``None`` (counted). Safe from any thread: the
        encoder's caches are single dict operations and one tuple swap."""
        try:
            line = self._encode(record)
        except Exception as exc:  # noqa: BLE001 - one bad span must not stop the rest
            STATS.drop("internal_error", 1, f"could not convert a span: {exc!r}")
            return None
        if line is None:
            limit = self._options.max_event_bytes
            STATS.drop("oversize", 1, f"event over max_event_bytes={limit}")
        return line

    # --- routing -----------------------------------------------------------------------

    def _cut_batches(self, partial: bool) -> None:
        size = self._options.batch_size
        pending = self._pending
        start = 0
        to_disk: Batch = []
        while len(pending) - start >= size or (partial and start < len(pending)):
            batch = pending[start : start + size]
            if not self._to_outbox(batch):
                to_disk.extend(batch)
            start += size
        del pending[:start]
        if to_disk:
            # One write for the step, not one per batch: each system call gives the
            # GIL away, and a request thread that keeps it busy makes the batcher wait
            # a switch interval (5 ms) to get it back. With a write per batch, a burst
            # during an outage outran the batcher and filled the queue.
            self._recovery.keep(to_disk)

    def _to_outbox(self, batch: Batch) -> bool:
        """Into the outbox when the ingest is healthy and there is room; ``False``: the
        batch goes to the spool."""
        usable = self._spool.usable
        outbox, control = self._outbox, self._control
        with outbox.lock:
            healthy = self._health.accepting(self._clock.now()) and not control.terminating
            if (healthy or not usable) and outbox.put_locked(batch):
                control.sender_wake.set()
                return True
            if healthy:
                control.recover_now = True  # overflow: drain it once the outbox is empty
        return False

    def spill_memory(self) -> None:
        """Outbox and the sender's batch to disk, make the segment claimable, and have
        the sender send it from there."""
        self._recovery.keep([line for batch in self._outbox.take_all() for line in batch])
        self._spool.close_segment()
        self._control.recover_now = True
        self._control.sender_wake.set()
