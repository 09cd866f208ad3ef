"""The live stream across a fleet: each node announces the events it stores with
PostgreSQL ``NOTIFY``, and every node ``LISTEN``s, so a dashboard open on any node
streams the events every node stores.

The announcement is sent in the transaction that stores the events, so it is delivered
when, and only if, they are committed. It carries the fields the stream shows, in
payloads under PostgreSQL's 8,000-byte limit, with the sending node's id: a node
publishes its own events at once and skips their announcement.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import psycopg

from peekapi_otel.server.db._pg_group import Rows

CHANNEL: Final = "peekapi_events"
PAYLOAD_LIMIT: Final = 7_900
"""Bytes of one payload, under the server's 8,000."""
RECONNECT_SECONDS: Final = 2.0

# The stream's fields of a stored row (see _stream._KEYS); index 7 (metadata) is left out.
_FIELDS: Final = (0, 1, 2, 3, 4, 5, 6, 8)
_logger = logging.getLogger(__name__)


def node_id() -> str:
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def payloads(node: str, rows: Rows) -> Iterator[str]:
    """``rows`` as announcements of at most :data:`PAYLOAD_LIMIT` bytes each."""
    head = f'{{"node":{json.dumps(node)},"rows":['
    room = PAYLOAD_LIMIT - len(head) - 2
    chunk: list[str] = []
    size = 0
    for row in rows:
        item = json.dumps([row[i] for i in _FIELDS], separators=(",", ":"))
        length = len(item.encode()) + 1
        if length > room:
            continue  # one event too large to announce (a 4 kB path): the stream skips it
        if size + length > room:
            yield head + ",".join(chunk) + "]}"
            chunk, size = [], 0
        chunk.append(item)
        size += length
    if chunk:
        yield head + ",".join(chunk) + "]}"


def announce(conn: psycopg.Connection[Any], node: str, rows: Rows) -> None:
    """Send the announcements of ``rows``, in the caller's transaction."""
    for payload in payloads(node, rows):
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))


def _rows(message: Any) -> list[tuple[Any, ...]]:
    """The stored rows (as far as the stream reads them) of a parsed announcement."""
    return [(f[0], f[1], f[2], f[3], f[4], f[5], f[6], None, f[7]) for f in message["rows"]]


class RemoteEvents:
    """A thread listening for the other nodes' announcements, publishing their rows.

    Args:
        url: the fleet's database.
        node: this node's id (its own announcements are skipped).
        publish: called with the rows of each announcement.
        connect: opens a connection (``_pg_store.connect``).
    """

    def __init__(
        self,
        url: str,
        node: str,
        publish: Callable[[Sequence[tuple[Any, ...]]], None],
        connect: Callable[[str], psycopg.Connection[Any]],
    ) -> None:
        self.url = url
        self.node = node
        self.received = 0
        #: Set while the listening connection is up.
        self.listening = threading.Event()
        self._publish = publish
        self._connect = connect
        self._stop = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._thread = threading.Thread(target=self._run, name="peekapi-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except psycopg.Error as exc:
                if not self._stop.is_set():
                    _logger.warning("stream: lost the other nodes' events: %s", exc)
            except Exception:  # the listener keeps trying, whatever went wrong
                _logger.exception("stream: the listener for the other nodes failed")
            self._stop.wait(RECONNECT_SECONDS)

    def _listen(self) -> None:
        conn = self._connect(self.url)
        self._conn = conn
        try:
            conn.execute(f"LISTEN {CHANNEL}")
            self.listening.set()
            while not self._stop.is_set():
                for notice in conn.notifies(timeout=1.0):
                    self._deliver(notice.payload)
        finally:
            self.listening.clear()
            self._conn = None
            conn.close()

    def _deliver(self, payload: str) -> None:
        try:
            message = json.loads(payload)
            if message.get("node") == self.node:
                return
            rows = _rows(message)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            _logger.debug("stream: skipped an announcement it cannot read")
            return
        self.received += len(rows)
        try:
            self._publish(rows)
        except Exception:  # a subscriber never stops the listener
            _logger.exception("event listener failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
