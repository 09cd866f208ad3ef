"""Delivers the notification log's pending rows, retrying a failing channel with backoff.

One thread per channel, apart from evaluation and from ingest: a channel that hangs
until its timeout delays only its own notifications. Each attempt is counted.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from peekapi_otel.server.alerts._channels import Outcome, Sender
from peekapi_otel.server.alerts._statedb import AlertDatabase, Notification

_logger = logging.getLogger(__name__)
_IDLE_WAIT: Final = 5.0


@dataclass(frozen=True)
class Backoff:
    """Exponential: ``first``, then doubling up to ``longest``; ``attempts`` in all."""

    first: float = 5.0
    longest: float = 600.0
    attempts: int = 8

    def delay(self, failures: int) -> float:
        return float(min(self.longest, self.first * 2 ** max(0, failures - 1)))


@dataclass
class ChannelCounts:
    sent: int = 0
    failed_attempts: int = 0
    given_up: int = 0


class Dispatcher:
    def __init__(
        self,
        db: AlertDatabase,
        senders: Mapping[str, Sender],
        *,
        clock: Callable[[], float],
        backoff: Backoff | None = None,
    ) -> None:
        self.db = db
        self.senders = dict(senders)
        self.clock = clock
        self.backoff = backoff or Backoff()
        self.counts = {name: ChannelCounts() for name in self.senders}
        self._wake = {name: threading.Event() for name in self.senders}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._warned: set[str] = set()

    def deliver_due(self, channel: str | None = None) -> int:
        """Try every notification (of ``channel``, or all) due now once; returns how many
        were sent."""
        sent = 0
        for notification in self.db.due(self.clock(), channel=channel):
            if self._stop.is_set():
                break
            sent += self._deliver(notification)
        return sent

    def _deliver(self, notification: Notification) -> int:
        sender = self.senders.get(notification.channel)
        counts = self.counts.setdefault(notification.channel, ChannelCounts())
        if sender is None:
            # The channel was removed from the alerts file since this was queued.
            self.db.mark_failed(notification.id, "channel no longer configured", None)
            counts.given_up += 1
            return 0
        try:
            outcome = sender.send(notification.payload)
        except Exception as exc:  # noqa: BLE001  # a bug in one channel must not stop the others
            outcome = Outcome(False, f"{type(exc).__name__}: {exc}")
        now = self.clock()
        if outcome.ok:
            self.db.mark_sent(notification.id, now)
            counts.sent += 1
            self._warned.discard(notification.channel)
            return 1
        counts.failed_attempts += 1
        failures = notification.attempts + 1
        error = outcome.error or "failed"
        retry_at: float | None = None
        if outcome.retryable and failures < self.backoff.attempts:
            delay = max(self.backoff.delay(failures), outcome.retry_after or 0.0)
            retry_at = now + min(delay, self.backoff.longest)
        else:
            counts.given_up += 1
        self.db.mark_failed(notification.id, error, retry_at)
        if notification.channel not in self._warned:
            # Once per failing spell of a channel, not per attempt.
            self._warned.add(notification.channel)
            _logger.warning(
                "alert channel %r failed (%s); %s",
                notification.channel,
                error,
                "will retry" if retry_at is not None else "gave up on this notification",
            )
        return 0

    def wake(self) -> None:
        for event in self._wake.values():
            event.set()

    def start(self) -> None:
        # Notifications queued for a channel since removed from the file: given up now.
        for channel in self.db.pending_channels() - set(self.senders):
            while orphans := self.db.due(math.inf, channel=channel):
                for notification in orphans:
                    self._deliver(notification)  # marks it failed: no sender
        for name in self.senders:
            thread = threading.Thread(
                target=self._run, args=(name,), name=f"peekapi-alerts-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.wake()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self, channel: str) -> None:
        wake = self._wake[channel]
        broken = False
        while not self._stop.is_set():
            wake.clear()
            try:
                self.deliver_due(channel)
                upcoming = self.db.next_due(channel)
                broken = False
            except Exception:  # the database locked for long, or closed at shutdown
                if not broken and not self._stop.is_set():
                    _logger.exception("alert delivery failed; trying again shortly")
                broken = True
                upcoming = None
            wait = _IDLE_WAIT
            if upcoming is not None:
                wait = min(_IDLE_WAIT, max(0.05, upcoming - self.clock()))
            wake.wait(wait)
