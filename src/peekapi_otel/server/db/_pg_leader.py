"""One alert evaluator among many ``serve`` processes: a PostgreSQL session advisory lock.

Each process asks :meth:`AdvisoryLeader.is_leader` before an evaluation round. The lock
is held by a connection of its own, so it goes with that connection: when the holding
process dies, its server session ends and the lock is free for a standby's next try.
The holder checks its connection each time it asks, and gives up the role as soon as
the connection is gone (the lock may then already be another process's).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Final

import psycopg

from peekapi_otel.server.db._pg_store import connect, describe

ALERTS_LOCK: Final = 0x7065656B61706902  # "peekapi" 02
"""The advisory lock key of the alert evaluator (64-bit, one per database)."""

_logger = logging.getLogger(__name__)


class AdvisoryLeader:
    """Args:
    url: the database every ``serve`` of the fleet writes.
    key: the advisory lock's key.
    """

    def __init__(self, url: str, *, key: int = ALERTS_LOCK) -> None:
        self.url = url
        self.key = key
        self.where = describe(url)
        self._conn: psycopg.Connection[Any] | None = None
        self._held = False
        self._lock = threading.Lock()

    def is_leader(self) -> bool:
        """Whether this process holds the lock now: takes it when free, never waits."""
        with self._lock:
            try:
                return self._check()
            except psycopg.Error as exc:
                self._drop(exc)
                return False

    def _check(self) -> bool:
        if self._conn is None or self._conn.closed:
            self._held = False
            self._conn = connect(self.url)
        if self._held:
            # A round trip proves the session, and with it the lock, still exists.
            self._conn.execute("SELECT 1")
            return True
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        self._held = bool(row and row[0])
        if self._held:
            _logger.warning("this serve now evaluates the alerts (lock held at %s)", self.where)
        return self._held

    def _drop(self, exc: psycopg.Error) -> None:
        if self._held:
            _logger.warning("gave up evaluating the alerts: lost %s: %s", self.where, exc)
        self._held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def release(self) -> None:
        """Give the role up (closing the session frees the lock for a standby at once)."""
        with self._lock:
            self._held = False
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.close()
                except psycopg.Error:
                    pass
