"""Batches in memory between the batcher and the sender, the batch the sender owns, and
the flush hand-shake that waits for both to be empty."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

Batch = list[bytes]


class Outbox:
    """At most ``max_events`` events in memory; the rest goes to the spool.

    A batch the sender took is *owned* by it (``inflight``). Shutdown, a timed-out flush
    or a SIGTERM may take it over with :meth:`take_all` and spool it; the sender then no
    longer spools it itself (:meth:`settle`), so the batch is on disk once.
    """

    def __init__(self, max_events: int) -> None:
        self.max_events = max_events
        self.lock = threading.Lock()
        self._changed = threading.Condition(self.lock)
        self._batches: deque[Batch] = deque()
        self._events = 0
        self.inflight: Batch | None = None
        self._flush_requests = 0
        self.flushed = 0  # written by the batcher only

    @property
    def has_batches(self) -> bool:
        return bool(self._batches)

    def put_locked(self, batch: Batch) -> bool:
        """Queue ``batch`` if it fits; the caller holds ``lock``."""
        if self._events + len(batch) > self.max_events:
            return False
        self._batches.append(batch)
        self._events += len(batch)
        return True

    def take(self) -> Batch | None:
        """The oldest batch, now owned by the sender."""
        with self.lock:
            if not self._batches:
                return None
            batch = self._batches.popleft()
            self._events -= len(batch)
            self.inflight = batch
            return batch

    def take_all(self) -> list[Batch]:
        """Every batch in memory, the sender's included (it no longer owns it)."""
        with self.lock:
            batches = list(self._batches)
            self._batches.clear()
            self._events = 0
            if self.inflight is not None:
                batches.append(self.inflight)
                self.inflight = None
            self._changed.notify_all()
        return batches

    def settle(self, batch: Batch, left: Batch, keep: Callable[[Batch], None]) -> bool:
        """The sender is done with ``batch``; ``left`` is what must still be kept.

        Returns ``True`` when the batch had been taken over (and spooled) and was then
        delivered after all: its copy on disk must not be sent again.
        """
        with self.lock:
            # Spooled under the lock: a flush waiting for ``inflight`` must find it on
            # disk, and shutdown must not take over a batch that is being spooled.
            taken_over_and_delivered = False
            if self.inflight is batch:
                if left:
                    keep(left)
            elif not left:
                taken_over_and_delivered = True
            self.inflight = None
            if not self._batches:
                # Only a flush waits here, and only for an empty outbox: no wake-up of
                # the flushing thread for every batch.
                self._changed.notify_all()
        return taken_over_and_delivered

    # --- flush -----------------------------------------------------------------------

    def request_flush(self) -> int:
        """A new flush request; the caller holds ``lock``. Returns its number."""
        self._flush_requests += 1
        return self._flush_requests

    def flush_requested(self) -> int:
        with self.lock:
            return self._flush_requests

    def mark_flushed(self, upto: int) -> None:
        """The batcher has cut every batch queued before flush request ``upto``."""
        with self.lock:
            self.flushed = upto
            self._changed.notify_all()

    def wait_flushed(
        self,
        target: int,
        deadline: float,
        now: Callable[[], float],
        interrupted: Callable[[], bool],
    ) -> bool:
        """Wait until flush ``target`` was cut and memory is empty; ``False`` on timeout."""
        done = False
        with self.lock:
            while not interrupted():
                done = self.flushed >= target and not self._batches and not self.inflight
                remaining = deadline - now()
                if done or remaining <= 0:
                    break
                self._changed.wait(min(remaining, 0.1))
        return done
