"""The live stream across nodes: the events one node stores reach the other nodes'
stream listeners (``LISTEN``/``NOTIFY``, sent only on commit), each once."""

from __future__ import annotations

import threading
import time
from typing import Any

from peekapi_otel.server._store import validate_batch
from peekapi_otel.server.db._pg_notify import PAYLOAD_LIMIT, payloads
from peekapi_otel.server.db._pg_store import PgEventStore
from server.postgres.test_pg_views import event


class _Seen:
    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.changed = threading.Condition()

    def __call__(self, rows: Any) -> None:
        with self.changed:
            self.rows += rows
            self.changed.notify_all()

    def wait_for(self, n: int) -> list[tuple[Any, ...]]:
        deadline = time.monotonic() + 30
        with self.changed:
            while len(self.rows) < n and time.monotonic() < deadline:
                self.changed.wait(deadline - time.monotonic())
            return list(self.rows)


def test_a_node_streams_the_events_another_one_stores(pg_url: str) -> None:
    writer, reader = PgEventStore(pg_url), PgEventStore(pg_url)
    on_writer, on_reader = _Seen(), _Seen()
    writer.listeners.append(on_writer)
    reader.listeners.append(on_reader)
    try:
        assert writer.listen(wait=30)
        assert reader.listen(wait=30)
        batch = validate_batch([event(i) for i in range(300)])  # several payloads
        assert writer.insert_rows(batch) == (300, 0)
        assert writer.insert_rows(batch[:10]) == (0, 10)  # duplicates: not streamed
        assert reader.insert_rows(validate_batch([event(500)])) == (1, 0)
        seen = on_reader.wait_for(301)
        assert sorted((r[1], r[8]) for r in seen) == sorted(
            (r[1], r[8]) for r in batch + validate_batch([event(500)])
        )
        assert len(on_writer.wait_for(301)) == 301
        assert seen[-1][:7] == validate_batch([event(500)])[0][:7]
    finally:
        writer.close()
        reader.close()


def test_payloads_stay_under_the_server_limit() -> None:
    rows = validate_batch([{**event(i), "path": "/p" * (i % 900)} for i in range(400)])
    sent = list(payloads("node-1", rows))
    assert len(sent) > 1
    assert all(len(p.encode()) <= PAYLOAD_LIMIT for p in sent)
