"""The outcome state machine: healthy, failing (one probe per backoff step) or paused
(3xx/401/403: a configuration error, kept on disk until fixed)."""

from __future__ import annotations

import logging
from pathlib import Path

from peekapi_otel.core._endpoint import mask_url
from peekapi_otel.core._options import Options
from peekapi_otel.core._stats import STATS
from peekapi_otel.delivery._clock import Clock
from peekapi_otel.delivery._control import Control
from peekapi_otel.delivery._retry import RetryPolicy
from peekapi_otel.delivery._transport import SendResult

_logger = logging.getLogger(__name__)


class Health:
    """What the last answers of the ingest say about sending now.

    * healthy: send at once, with up to ``policy.attempts`` tries per batch;
    * failing: batches go to disk; one probe (a single try) per backoff step;
    * paused until ``paused_until``: nothing is sent; a probe when the pause ends.
    """

    def __init__(
        self,
        options: Options,
        policy: RetryPolicy,
        control: Control,
        clock: Clock,
        *,
        pause_seconds: float,
        spool_dir: Path,
    ) -> None:
        self._options = options
        self._policy = policy
        self._control = control
        self._clock = clock
        self._pause_seconds = pause_seconds
        self._spool_dir = spool_dir
        self.healthy = True
        self.paused_until = 0.0
        self.next_probe = 0.0
        self._probes = 0

    def paused(self, now: float) -> bool:
        return self.paused_until > now

    def accepting(self, now: float) -> bool:
        """Healthy and not paused: batches may wait in memory for the sender."""
        return self.healthy and self.paused_until <= now

    def waiting_to_probe(self, now: float) -> bool:
        return not self.healthy and now < self.next_probe

    def mark_answered(self) -> None:
        """The ingest took (or finally refused) a batch: back to healthy."""
        if not self.healthy or self.paused_until:
            STATS.forget("failing")
            STATS.forget("paused")
            _logger.warning("peekapi-otel: the ingest answers again; sending spooled events")
            self._control.recover_now = True
            self._control.sender_wake.set()
        self.healthy = True
        self.paused_until = 0.0
        self._probes = 0

    def mark_failing(self, result: SendResult) -> None:
        self.healthy = False
        self._probes += 1
        self.next_probe = self._clock.now() + self._policy.probe_delay(
            self._probes, result.retry_after
        )

    def pause(self, result: SendResult) -> None:
        self.paused_until = self._clock.now() + self._pause_seconds
        self._control.recover_now = True  # probe with a spooled batch when the pause ends
        if result.status is not None and 300 <= result.status < 400:
            what = (
                f"the ingest answered {result.status} "
                f"(redirect to {mask_url(result.location or '')!r}); "
                "redirects are never followed: set PEEKAPI_ENDPOINT to the final URL"
            )
        else:
            what = f"the ingest rejected the API key (HTTP {result.status}); check PEEKAPI_API_KEY"
        if STATS.once(
            "paused",
            logging.ERROR,
            "peekapi-otel: %s. Events are kept on disk in %s and sending is retried every "
            "%d s; after changing the endpoint or key, send them with the new settings: "
            "peekapi-otel spool --path %s --drain --to-current",
            what,
            self._spool_dir,
            int(self._pause_seconds),
            self._spool_dir,
        ):
            self.call_on_error(what)

    def report_failure(self, result: SendResult) -> None:
        what = result.error if result.is_connection_error else f"HTTP {result.status}"
        if STATS.once(
            "failing",
            logging.WARNING,
            "peekapi-otel: sending to %s failed (%s); retrying with backoff, events are "
            "kept on disk meanwhile",
            self._options.endpoint,
            what,
        ):
            self.call_on_error(f"PeekAPI send failed: {what}")

    def call_on_error(self, message: str) -> None:
        callback = self._options.on_error
        if callback is not None:
            try:
                callback(RuntimeError(message))
            except Exception:  # noqa: BLE001 - a failing user callback changes nothing
                pass
