"""The batcher thread: cuts the queued event lines into batches and routes each
to the outbox (healthy ingest, room in memory) or to the spool."""

from __future__ import annotations

import logging
import random
from collections import deque

from peekapi_otel.core._options import Options
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

    The request threads queue event lines (``Pipeline.submit`` encodes each record);
    this thread only cuts and routes them.
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
        #: Filled by ``Pipeline.submit`` (deque appends need no lock), emptied here.
        self.queue: deque[bytes] = deque()
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
        self._pending.extend([queue.popleft() for _ in range(len(queue))])

    def take_pending(self) -> Batch:
        """The lines not cut into a batch yet (shutdown puts them on disk)."""
        pending, self._pending = self._pending, []
        return pending

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
