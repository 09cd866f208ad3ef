"""Group commit: the batches that arrive while one transaction runs are stored together
in the next one.

Requests reach a node's one writer connection in turn. Each transaction pays a commit
(a WAL flush) and one upsert per rollup row it touches, whatever the number of events,
so under load the node stores the waiting batches in one transaction: the flush and the
rollup rows are shared, and each batch still gets its own answer once the transaction
that holds it committed. Alone, a batch is stored at once, as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import psycopg

from peekapi_otel.server.db._backend import StoreUnavailable

Rows = Sequence[tuple[Any, ...]]

GROUP_ROWS: Final = 5_000
"""Batches join a transaction up to this many rows; the rest wait for the next one."""


class _Batch:
    __slots__ = ("error", "new", "rows")

    def __init__(self, rows: Rows) -> None:
        self.rows = rows
        self.new: Rows | None = None
        self.error: BaseException | None = None

    @property
    def settled(self) -> bool:
        return self.new is not None or self.error is not None


class GroupCommit:
    """Args:
    run: runs its argument on the writer connection (``_Link.run``).
    store: stores a group's rows in one transaction, returning each batch's new rows.
    failure: what the store raises for a database error (``_Link.failure``).
    wait: seconds a batch waits for the transaction before its own.
    where: the database, for messages.
    """

    def __init__(
        self,
        run: Callable[[Callable[[psycopg.Connection[Any]], Any]], Any],
        store: Callable[[psycopg.Connection[Any], list[Rows]], list[Rows]],
        failure: Callable[[psycopg.Connection[Any], psycopg.Error], Exception],
        *,
        wait: float,
        where: str,
    ) -> None:
        self._run = run
        self._store = store
        self._failure = failure
        self._wait = wait
        self._where = where
        self._lock = threading.Condition()
        self._waiting: list[_Batch] = []
        self._writing = False

    def insert(self, rows: Rows) -> Rows:
        """The rows of ``rows`` that were new, once committed; raises as ``failure``,
        and :class:`StoreUnavailable` when the transaction before it takes longer than
        the ``wait`` seconds."""
        batch = _Batch(rows)
        deadline = time.monotonic() + self._wait
        with self._lock:
            self._waiting.append(batch)
            # While a transaction runs, this batch waits to be taken by the next one.
            while self._writing and not batch.settled:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._waiting.remove(batch)
                    raise StoreUnavailable(f"PostgreSQL at {self._where} is not answering")
                self._lock.wait(left)
            if not batch.settled:
                self._writing = True  # this thread runs the next transaction
        if not batch.settled:
            try:
                self._run(self._store_waiting)
            finally:
                with self._lock:
                    self._writing = False
                    if batch in self._waiting:  # refused before its turn: never stored
                        self._waiting.remove(batch)
                    self._lock.notify_all()
        if batch.error is not None:
            raise batch.error
        assert batch.new is not None  # every group taken sets each batch's outcome
        return batch.new

    def _take(self) -> list[_Batch]:
        with self._lock:
            group: list[_Batch] = []
            size = 0
            while self._waiting and (not group or size + len(self._waiting[0].rows) <= GROUP_ROWS):
                group.append(self._waiting.pop(0))
                size += len(group[-1].rows)
            return group

    def _store_waiting(self, conn: psycopg.Connection[Any]) -> None:
        group = self._take()
        if not group:
            return
        try:
            self._store_group(conn, group)
        except BaseException as exc:  # every batch gets an outcome, whatever happened
            for batch in group:
                if batch.new is None and batch.error is None:
                    batch.error = exc
            raise

    def _store_group(self, conn: psycopg.Connection[Any], group: list[_Batch]) -> None:
        try:
            news = self._store(conn, [b.rows for b in group])
        except psycopg.DataError as exc:
            if len(group) == 1:
                group[0].error = self._failure(conn, exc)
                return
            # One batch holds a value the database can never store: each on its own,
            # so only that one is refused.
            for batch in group:
                self._store_group(conn, [batch])
            return
        except psycopg.Error as exc:
            error = self._failure(conn, exc)
            for batch in group:
                batch.error = error
            return
        for batch, new in zip(group, news, strict=True):
            batch.new = new
