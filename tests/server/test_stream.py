"""The live stream hub: filters, one message per stored batch, and a subscriber that
stops reading is dropped and counted instead of holding the insert path."""

from __future__ import annotations

import json

from peekapi_otel.server._query import Filters
from peekapi_otel.server._store import validate_batch
from peekapi_otel.server._stream import QUEUE_SIZE, StreamHub


def _rows(*consumers: str | None) -> list[tuple[object, ...]]:
    return validate_batch(
        [
            {
                "method": "GET",
                "path": "/x",
                "status_code": 200 if c != "bad" else 503,
                "response_time_ms": 1.0,
                "request_size": 0,
                "response_size": 0,
                "consumer_id": c,
                "metadata": None,
                "timestamp": "2026-12-03T08:00:00+00:00",
            }
            for c in consumers
        ]
    )


def test_filters_and_one_message_per_batch() -> None:
    hub = StreamHub()
    everyone = hub.subscribe(Filters())
    errors = hub.subscribe(Filters(status=5))
    anonymous = hub.subscribe(Filters(consumer=""))
    assert everyone is not None
    assert errors is not None
    assert anonymous is not None
    hub.publish(_rows("alice", "bad", None))
    message = everyone.queue.get_nowait()
    assert message is not None
    assert [e["consumer_id"] for e in json.loads(message[6:])] == ["alice", "bad", None]
    error_message = errors.queue.get_nowait()
    assert error_message is not None
    assert [e["status_code"] for e in json.loads(error_message[6:])] == [503]
    anonymous_message = anonymous.queue.get_nowait()
    assert anonymous_message is not None
    assert len(json.loads(anonymous_message[6:])) == 1
    hub.publish(_rows("alice"))
    assert errors.queue.empty()  # nothing matched: no message at all


def test_a_subscriber_that_stops_reading_is_dropped_and_counted() -> None:
    hub = StreamHub()
    stalled = hub.subscribe(Filters())
    reading = hub.subscribe(Filters())
    assert stalled is not None
    assert reading is not None
    for _ in range(QUEUE_SIZE + 5):
        hub.publish(_rows("alice"))  # never blocks, however full a queue is
        reading.queue.get_nowait()
    assert stalled.dropped
    assert not reading.dropped
    assert hub.stats()["dropped"] == 1
    hub.close()
    assert reading.queue.get_nowait() is None  # closed: the stream handler ends
