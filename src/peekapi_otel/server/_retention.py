"""``serve --retention 30d``: raw events older than the retention are deleted, in the
background; the rollups keep counting them, so every view of an older range still shows
its volume, errors and latency sketches."""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

from peekapi_otel.server._store import EventStore

INTERVAL_SECONDS: Final = 60.0
_logger = logging.getLogger(__name__)


class Retention:
    """Deletes raw events older than ``seconds`` once at start, then every ``interval``."""

    def __init__(self, store: EventStore, seconds: int, *, interval: float = INTERVAL_SECONDS):
        self.store = store
        self.seconds = seconds
        self.interval = interval
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peekapi-retention", daemon=True)

    def run_once(self, now: float | None = None) -> int:
        cutoff = (time.time() if now is None else now) - self.seconds
        dropped = self.store.drop_raw_before(cutoff)
        self.dropped += dropped
        if dropped:
            _logger.info("retention: deleted %d raw events older than %ds", dropped, self.seconds)
        return dropped

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a failed pass (store closing, disk full) tries again later
                _logger.exception("retention pass failed")
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
