"""The live request stream behind ``/api/stream`` (Server-Sent Events).

The store calls :meth:`StreamHub.publish` with the rows of each committed insert, on the
ingest's thread: it puts one message (a JSON array of the batch's matching events) on each
subscriber's bounded queue and never waits. A subscriber whose queue is full (a browser
that stopped reading) is dropped and counted; its page's EventSource reconnects by
itself. No table is polled.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Sequence
from typing import Any, Final

from peekapi_otel.server._query import Filters
from peekapi_otel.server._rollup import ANONYMOUS, route_of, status_class

QUEUE_SIZE: Final = 200
"""Messages (one per stored batch) a subscriber may have waiting before it is dropped."""
MAX_SUBSCRIBERS: Final = 64

# Row fields (see _store._INSERT).
_KEYS: Final = (
    ("method", 0),
    ("path", 1),
    ("status_code", 2),
    ("response_time_ms", 3),
    ("request_size", 4),
    ("response_size", 5),
    ("consumer_id", 6),
    ("timestamp", 8),
)
CLOSED: Final = None


def event_of(row: Sequence[Any]) -> dict[str, Any]:
    event = {key: row[i] for key, i in _KEYS}
    event["route"] = route_of(row[1], row[2])
    return event


def matches(filters: Filters, row: Sequence[Any]) -> bool:
    if filters.method is not None and row[0] != filters.method:
        return False
    if filters.path is not None and route_of(row[1], row[2]) != filters.path:
        return False
    if filters.status is not None and status_class(row[2]) != filters.status:
        return False
    return filters.consumer is None or (row[6] or ANONYMOUS) == filters.consumer


def _message(events: list[dict[str, Any]]) -> bytes:
    return b"data: " + json.dumps(events, separators=(",", ":")).encode() + b"\n\n"


class Subscriber:
    def __init__(self, filters: Filters) -> None:
        self.filters = filters
        self.queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_SIZE)
        self.dropped = False


class StreamHub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self.dropped = 0
        self.refused = 0
        self.delivered = 0

    def subscribe(self, filters: Filters) -> Subscriber | None:
        """A new subscriber, or None when ``MAX_SUBSCRIBERS`` are already open."""
        with self._lock:
            if len(self._subscribers) >= MAX_SUBSCRIBERS:
                self.refused += 1
                return None
            sub = Subscriber(filters)
            self._subscribers = [*self._subscribers, sub]
            return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subscribers = [s for s in self._subscribers if s is not sub]

    def publish(self, rows: Sequence[Sequence[Any]]) -> None:
        subscribers = self._subscribers  # replaced, never mutated: no lock on this path
        if not subscribers or not rows:
            return
        # One SSE message per insert, a JSON array of its events, encoded once for all
        # the subscribers without filters: one queue operation each, whatever the batch.
        events = [event_of(row) for row in rows]
        everything: bytes | None = None
        for sub in subscribers:
            if sub.dropped:
                continue
            if sub.filters.any():
                chosen = [
                    e for e, row in zip(events, rows, strict=True) if matches(sub.filters, row)
                ]
                if not chosen:
                    continue
                message = _message(chosen)
            else:
                if everything is None:
                    everything = _message(events)
                message = everything
            try:
                sub.queue.put_nowait(message)
            except queue.Full:
                sub.dropped = True
                self.dropped += 1

    def close(self) -> None:
        with self._lock:
            subscribers, self._subscribers = self._subscribers, []
        for sub in subscribers:
            sub.dropped = True
            try:
                sub.queue.put_nowait(CLOSED)
            except queue.Full:
                pass

    def stats(self) -> dict[str, int]:
        return {
            "subscribers": len(self._subscribers),
            "dropped": self.dropped,
            "refused": self.refused,
        }
