"""What goes to the disk spool, and how it comes back: claims of spooled segments sent
while the ingest answers, live batches first."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from peekapi_otel.core._stats import STATS
from peekapi_otel.delivery._claim import Claim
from peekapi_otel.delivery._clock import Clock
from peekapi_otel.delivery._control import Control
from peekapi_otel.delivery._health import Health
from peekapi_otel.delivery._outbox import Batch
from peekapi_otel.delivery._spool import Spool

if TYPE_CHECKING:  # the sender module imports this one
    from peekapi_otel.delivery._sender import Sender

#: Seconds between two drains of the spool while the ingest is healthy.
DRAIN_INTERVAL: Final = 60.0
#: At shutdown, a drain stops this long before the deadline: the rest stays on disk.
_SHUTDOWN_MARGIN: Final = 0.1


class Recovery:
    """Writes batches to the spool and drains it again."""

    def __init__(
        self,
        spool: Spool,
        sender: Sender,
        health: Health,
        control: Control,
        clock: Clock,
        *,
        batch_size: int,
        interval: float = DRAIN_INTERVAL,
    ) -> None:
        self._spool = spool
        self._health = health
        self._control = control
        self._clock = clock
        self._batch_size = batch_size
        self._interval = interval
        self._sender = sender
        self.next_drain = 0.0
        #: This process put events on disk since it started.
        self.spooled_here = False
        #: Lines of batches that were taken over (and spooled) while their POST went on,
        #: and that POST was acknowledged: a drain in this process skips them on disk.
        self.delivered_on_disk: set[bytes] = set()

    def keep(self, batch: Batch) -> None:
        """Put ``batch`` on disk (what cannot be written is counted by the spool)."""
        written = self._spool.write(batch)
        if written:
            self.spooled_here = True
            STATS.add("spooled", written)

    def may_drain(self) -> bool:
        """At shutdown, a drain goes on only when this process spooled events (an
        outage, a burst over ``max_buffer_size``, SIGTERM spilling memory), only while
        the ingest answers, and only within the deadline: what it spooled is sent now
        rather than by the next process."""
        control = self._control
        if not control.stop.is_set():
            return True
        return (control.terminating or self.spooled_here) and (
            control.deadline is None or self._clock.now() < control.deadline - _SHUTDOWN_MARGIN
        )

    def drain(self, send_live: Callable[[], bool]) -> bool:
        """Send spooled segments while the ingest answers; ``send_live`` sends a batch
        from memory first whenever there is one. ``False`` when nothing was waiting."""
        control, health, clock = self._control, self._health, self._clock
        control.recover_now = False
        self.next_drain = clock.now() + self._interval
        self._spool.close_segment()
        claim = self._spool.claim()
        if claim is None:
            return False
        try:
            while claim.remaining and self.may_drain():
                if send_live():
                    continue
                now = clock.now()
                if health.paused(now) or health.waiting_to_probe(now):
                    return True
                if not self._send_claimed(claim):
                    return True
        finally:
            claim.release()
        control.recover_now = True  # more segments may wait: keep draining at full speed
        return True

    def _send_claimed(self, claim: Claim) -> bool:
        """Send the claim's next batch; ``False`` when it must wait for a later drain."""
        batch = claim.batch(self._batch_size)
        todo = batch
        delivered = self.delivered_on_disk
        if delivered:
            todo = [line for line in batch if line not in delivered]
        left = self._sender.deliver(todo, recovered=True) if todo else []
        if left is todo:
            return False
        if left:
            self.keep(left)  # a split batch partly sent: the rest waits in a new segment
        if delivered:
            delivered.difference_update(batch)
        claim.ack(len(batch))
        return True
