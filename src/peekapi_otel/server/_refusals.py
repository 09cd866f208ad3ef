"""Refused batches made visible: counted by reason, logged once per reason per interval.

A client whose batches are refused (wrong key, missing field, bad body) keeps retrying
or drops its events; without a line in the ingest's log nobody sees why. One line per
reason per minute says how many were refused and which clients sent them, however many
arrive.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from peekapi_otel.server._text import printable

LOG_INTERVAL: Final = 60.0
_MAX_CLIENTS: Final = 5
_MAX_REASONS: Final = 100
# "event 17: missing field metadata" and "event 0: missing field metadata" are one reason.
_EVENT_INDEX: Final = re.compile(r"^event \d+: ")


@dataclass
class _Reason:
    status: int
    count: int = 0
    unlogged: int = 0
    logged_at: float | None = None
    clients: dict[str, None] = field(default_factory=dict)


def reason_key(status: int, reason: str) -> str:
    return f"{status} {_EVENT_INDEX.sub('', reason)}"


class RefusalLog:
    """Thread-safe counters of refused batches, and their rate-limited log lines."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._reasons: dict[str, _Reason] = {}
        self._batches = 0

    def refused(self, status: int, reason: str, client: str) -> None:
        """Count one refused batch; log it now if its reason was not logged recently."""
        key = reason_key(status, reason)
        client = printable(client or "(unknown client)")[:120]
        with self._lock:
            self._batches += 1
            entry = self._reasons.get(key)
            if entry is None:
                if len(self._reasons) >= _MAX_REASONS:
                    key = "other"
                entry = self._reasons.setdefault(key, _Reason(status))
            entry.count += 1
            entry.unlogged += 1
            if len(entry.clients) < _MAX_CLIENTS:
                entry.clients[client] = None
            now = self._clock()
            due = entry.logged_at is None or now - entry.logged_at >= self._interval
            line = self._take_line(key, entry, now) if due else None
        if line is not None:
            self._logger.warning("%s", line)

    def _take_line(self, key: str, entry: _Reason, now: float) -> str:
        first = entry.logged_at is None
        window = "" if first else f" in the last {self._interval:g} s"
        clients = ", ".join(entry.clients)
        n = entry.unlogged
        line = (
            f"refused {n} batch{'es' if n != 1 else ''}{window}: {printable(key)} (from {clients})"
        )
        entry.unlogged = 0
        entry.logged_at = now
        entry.clients.clear()
        return line

    def flush(self, *, force: bool = False) -> None:
        """Log the counts not logged yet whose interval is over (all of them if ``force``)."""
        lines = []
        with self._lock:
            now = self._clock()
            for key, entry in self._reasons.items():
                if entry.unlogged and (
                    force or entry.logged_at is None or now - entry.logged_at >= self._interval
                ):
                    lines.append(self._take_line(key, entry, now))
        for line in lines:
            self._logger.warning("%s", line)

    def snapshot(self) -> dict[str, Any]:
        """``{"batches": N, "by_reason": {"400 missing field path": n, ...}}``."""
        with self._lock:
            return {
                "batches": self._batches,
                "by_reason": {key: entry.count for key, entry in self._reasons.items()},
            }
