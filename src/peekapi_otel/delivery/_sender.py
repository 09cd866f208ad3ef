"""The sender thread: live batches first, then the spool; each batch POSTed with retries
bounded by the backoff policy, a flush or shutdown deadline, and SIGTERM."""

from __future__ import annotations

import logging
import threading

from peekapi_otel.core._encoder import encode_batch
from peekapi_otel.core._options import Options
from peekapi_otel.core._stats import STATS
from peekapi_otel.delivery._clock import Clock
from peekapi_otel.delivery._control import TERMINATING_TICK, Control
from peekapi_otel.delivery._health import Health
from peekapi_otel.delivery._outbox import Batch, Outbox
from peekapi_otel.delivery._recovery import Recovery
from peekapi_otel.delivery._retry import Outcome, RetryPolicy, classify
from peekapi_otel.delivery._transport import SendResult, Transport

_logger = logging.getLogger(__name__)

#: The longest the idle sender sleeps before it looks at its timers again.
_MAX_IDLE: float = 5.0


class Sender:
    """POSTs one batch and acts on the answer (see :class:`~._retry.Outcome`)."""

    def __init__(
        self,
        options: Options,
        transport: Transport,
        policy: RetryPolicy,
        health: Health,
        control: Control,
        clock: Clock,
    ) -> None:
        self._options = options
        self.transport = transport
        self._policy = policy
        self._health = health
        self._control = control
        self._clock = clock

    def deliver(self, batch: Batch, *, recovered: bool) -> Batch:
        """POST ``batch`` with retries; returns what must be kept (``batch`` itself when
        nothing was done with it, empty when it was delivered or dropped for good)."""
        health = self._health
        attempts = self._policy.attempts if health.healthy else 1
        attempt = 0
        while True:
            attempt += 1
            result = self._post(batch)
            outcome = classify(result)
            if outcome is Outcome.OK:
                health.mark_answered()
                STATS.add("sent", len(batch))
                STATS.add("batches_sent")
                if recovered:
                    STATS.add("recovered", len(batch))
                if self._options.debug:
                    _logger.info("peekapi-otel sent %d events", len(batch))
                return []
            if outcome is Outcome.TOO_LARGE:
                return self._deliver_halves(batch, recovered=recovered)
            if outcome is Outcome.REJECTED:
                STATS.drop(
                    "rejected",
                    len(batch),
                    f"ingest answered {result.status}: {result.excerpt.strip()[:200]!r}",
                )
                health.mark_answered()
                return []
            if outcome is Outcome.PAUSE:
                health.pause(result)
                return batch
            health.report_failure(result)
            if attempt >= attempts:
                health.mark_failing(result)
                return batch
            if not self._wait_before_retry(self._policy.backoff(attempt, result.retry_after)):
                return batch
            STATS.add("retried", len(batch))

    def _deliver_halves(self, batch: Batch, *, recovered: bool) -> Batch:
        """After a 413: each half on its own, down to a single event."""
        if len(batch) == 1:
            STATS.drop("oversize", 1, "the ingest answered 413 for a single event")
            return []
        half = len(batch) // 2
        first, second = batch[:half], batch[half:]
        left = self.deliver(first, recovered=recovered)
        if left is first:
            return batch  # nothing got through: keep the batch whole
        return left + self.deliver(second, recovered=recovered)

    def _post(self, batch: Batch) -> SendResult:
        timeout = self._options.timeout
        now = self._clock.now()
        limit = self._control.memory_deadline(now)
        if limit is not None:
            timeout = max(min(timeout, limit - now), 0.05)
        try:
            return self.transport.send(encode_batch(batch), timeout)
        except Exception as exc:  # noqa: BLE001 - transports must not kill the sender
            return SendResult(error=f"{type(exc).__name__}: {exc}")

    def _wait_before_retry(self, seconds: float) -> bool:
        """Sleep ``seconds`` before a retry. ``False`` when the retry must not happen:
        shutdown, a flush deadline or SIGTERM comes first, and the batch goes to disk."""
        clock, control = self._clock, self._control
        end = clock.now() + seconds
        while True:
            if control.terminating:
                return False
            now = clock.now()
            limit = control.memory_deadline(now)
            if limit is not None and end > limit:
                return False
            remaining = end - now
            if remaining <= 0:
                return True
            clock.wait(control.interrupt, remaining)
            control.interrupt.clear()


class SendLoop:
    """The ``peekapi-sender`` thread's work: one step at a time, idle waits between."""

    def __init__(
        self,
        sender: Sender,
        health: Health,
        outbox: Outbox,
        recovery: Recovery,
        control: Control,
        clock: Clock,
    ) -> None:
        self._sender = sender
        self._health = health
        self._outbox = outbox
        self._recovery = recovery
        self._control = control
        self._clock = clock

    def run(self, batcher: threading.Thread) -> None:
        control = self._control
        while True:
            control.sender_wake.clear()
            try:
                busy = self.step()
            except Exception:  # the thread must survive anything
                _logger.exception("peekapi-otel sender error")
                busy = False
                control.stop.wait(1.0)
            if control.stop.is_set():
                if control.deadline is not None and self._clock.now() >= control.deadline:
                    return
                if not busy and not self._outbox.has_batches and not batcher.is_alive():
                    return
            if not busy:
                self._clock.wait(control.sender_wake, self._idle_wait())

    def _idle_wait(self) -> float:
        control, health = self._control, self._health
        if control.stop.is_set() or control.terminating:
            return TERMINATING_TICK
        now = self._clock.now()
        if health.paused(now):
            target = health.paused_until
        elif health.waiting_to_probe(now):
            target = min(health.next_probe, self._recovery.next_drain)
        else:
            target = self._recovery.next_drain
        return min(max(target - now, TERMINATING_TICK), _MAX_IDLE)

    def step(self) -> bool:
        """Do one unit of work; ``False`` when there was nothing to do."""
        if self.send_live():
            return True
        control, health, recovery = self._control, self._health, self._recovery
        now = self._clock.now()
        if health.paused(now) or (control.stop.is_set() and not recovery.may_drain()):
            return False
        if not health.healthy:
            if now < health.next_probe:
                return False
            return recovery.drain(self.send_live)  # probe with a spooled batch
        if control.recover_now or control.terminating or now >= recovery.next_drain:
            return recovery.drain(self.send_live)
        return False

    def send_live(self) -> bool:
        """Send (or spool) the oldest batch in memory; ``False`` when there is none."""
        batch = self._outbox.take()
        if batch is None:
            return False
        control, health = self._control, self._health
        now = self._clock.now()
        hold = (
            health.paused(now)
            or control.terminating
            or (not health.healthy and (control.stop.is_set() or now < health.next_probe))
        )
        # While the ingest keeps failing, batches go to disk; one probe per backoff step.
        left = batch if hold else self._sender.deliver(batch, recovered=False)
        if self._outbox.settle(batch, left, self._recovery.keep):
            self._recovery.delivered_on_disk.update(batch)
        return True
