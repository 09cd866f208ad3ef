"""Process-wide counters, drop accounting by reason, and log de-duplication."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Final

_logger = logging.getLogger("peekapi_otel")

COUNTERS: Final = ("seen", "sent", "spooled", "recovered", "retried", "batches_sent")
DROP_REASONS: Final = (
    "queue_full",
    "spool_full",
    "spool_error",
    "evicted",
    "rejected",
    "oversize",
    "corrupt",
    "consumer_error",
    "internal_error",
    "disabled",
)
_SUMMARY_INTERVAL: Final = 60.0


class Stats:
    """Counters safe to bump from any thread; the first drop of each reason logs a warning."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._drops: Counter[str] = Counter()
        self._unlogged: Counter[str] = Counter()
        self._last_summary = 0.0
        self._once: set[str] = set()
        self._new_seen()

    def _new_seen(self) -> None:
        self._seen = itertools.count()
        #: One request seen: the count's own ``__next__``, a single C call under the GIL
        #: (no lock, no Python frame, no increment lost), as it runs for every request.
        self.add_seen: Callable[[], object] = self._seen.__next__

    def _seen_so_far(self) -> int:
        # repr is the one way to read a count without advancing it on every Python
        # version (its pickle support is gone in 3.14).
        return int(repr(self._seen)[6:-1])

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def drop(self, reason: str, n: int = 1, detail: str = "") -> None:
        if n <= 0:
            return
        with self._lock:
            self._drops[reason] += n
            first = self._drops[reason] == n
            if first:
                # The summary of later drops comes a full interval after a first warning.
                self._last_summary = self._clock()
            else:
                self._unlogged[reason] += n
            summary = None if first else self._take_summary_locked(force=False)
        if first:
            _logger.warning(
                "peekapi-otel dropped %d event(s): %s%s; later drops are counted in "
                "peekapi_otel.stats() and summarised once a minute",
                n,
                reason,
                f" ({detail})" if detail else "",
            )
        elif summary:
            self._log_summary(*summary)

    def summarise_drops(self, *, force: bool = False) -> None:
        """Log the drops counted since the last report, if a minute has passed (the
        batcher calls this on its flush timer) or at once with ``force`` (shutdown):
        drops are reported even when no further drop comes to trigger the summary."""
        with self._lock:
            summary = self._take_summary_locked(force=force)
        if summary:
            self._log_summary(*summary)

    def _take_summary_locked(self, *, force: bool) -> tuple[dict[str, int], dict[str, int]] | None:
        if not self._unlogged:
            return None
        now = self._clock()
        if not force and now - self._last_summary < _SUMMARY_INTERVAL:
            return None
        since = dict(self._unlogged)
        self._unlogged.clear()
        self._last_summary = now
        return since, {reason: self._drops[reason] for reason in since}

    @staticmethod
    def _log_summary(since: dict[str, int], totals: dict[str, int]) -> None:
        _logger.warning(
            "peekapi-otel dropped more events since the last report: %s (in total: %s)",
            since,
            totals,
        )

    def drop_quietly(self, reason: str, n: int = 1) -> None:
        """Count a drop whose cause was already reported (e.g. export disabled)."""
        with self._lock:
            self._drops[reason] += n

    def once(
        self,
        key: str,
        level: int,
        message: str,
        *args: object,
        exc_info: BaseException | None = None,
    ) -> bool:
        """Log ``message`` the first time ``key`` is seen in this process."""
        with self._lock:
            if key in self._once:
                return False
            self._once.add(key)
        _logger.log(level, message, *args, exc_info=exc_info)
        return True

    def forget(self, key: str) -> None:
        with self._lock:
            self._once.discard(key)

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            result: dict[str, object] = {name: self._counts[name] for name in COUNTERS}
            result["seen"] = self._counts["seen"] + self._seen_so_far()
            for name, value in self._counts.items():
                result.setdefault(name, value)
            dropped = {reason: self._drops[reason] for reason in DROP_REASONS}
            for reason, value in self._drops.items():
                dropped.setdefault(reason, value)
        result["dropped"] = dropped
        result["dropped_total"] = sum(dropped.values())
        return result

    def reset(self) -> None:
        """Start from zero (a forked child counts only its own events)."""
        self._lock = threading.Lock()
        self._counts = Counter()
        self._drops = Counter()
        self._unlogged = Counter()
        self._once = set()
        self._new_seen()


STATS: Final = Stats()


def stats() -> dict[str, object]:
    """Counters for this process: events seen, sent, spooled, recovered, retried, and
    ``dropped`` by reason (``queue_full``, ``spool_full``, ``evicted``, ``rejected``,
    ``oversize``, ``corrupt``, ``consumer_error``, ...)."""
    return STATS.snapshot()
