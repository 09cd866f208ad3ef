"""SQLite event store for the local ingest: validation, de-duplicated inserts, statistics.

:meth:`EventStore.summary` (computed in ``_summary``) is the single source of the figures
shown by the dashboard (``/api/summary``) and by ``peekapi-otel report``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from peekapi_otel._schema import FIELD_NAMES, event_problem, with_defaults
from peekapi_otel.server._summary import UNMATCHED_SQL, summarize

LATEST_LIMIT: Final = 50

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    response_time_ms REAL NOT NULL,
    request_size INTEGER NOT NULL,
    response_size INTEGER NOT NULL,
    consumer_id TEXT,
    metadata TEXT,
    timestamp TEXT NOT NULL,
    trace_id TEXT,
    span_id TEXT,
    received_at REAL NOT NULL
);
-- NULL pairs never collide, so events without trace/span ids are always kept.
CREATE UNIQUE INDEX IF NOT EXISTS events_pair ON events (trace_id, span_id);
-- Covering indexes: per-endpoint aggregates and the p95 look-ups (_summary) read only these.
CREATE INDEX IF NOT EXISTS events_endpoint
    ON events (method, path, response_time_ms, status_code);
CREATE INDEX IF NOT EXISTS events_latency ON events (response_time_ms);
-- Event time (the request's start), for the chart and the latest requests.
CREATE INDEX IF NOT EXISTS events_time ON events (julianday(timestamp));
-- Deliveries the unique index turned away: at-least-once delivery made visible.
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

# Unmatched requests (see _summary) in a partial index of their own: their groups, raw
# paths and p95 are read without scanning the matched traffic.
_UNMATCHED_INDEX: Final = f"""
CREATE INDEX IF NOT EXISTS events_unmatched
    ON events (method, status_code, path, response_time_ms) WHERE {UNMATCHED_SQL}
"""

_COUNT_DUPLICATES: Final = """
INSERT INTO counters (name, value) VALUES ('duplicates', ?)
ON CONFLICT (name) DO UPDATE SET value = value + excluded.value
"""

#: A row: the wire fields in schema order, then what the store derives.
_ROW_COLUMNS: Final = (*FIELD_NAMES, "trace_id", "span_id", "received_at")
_INSERT: Final = (
    f"INSERT OR IGNORE INTO events ({', '.join(_ROW_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_ROW_COLUMNS))})"
)


class InvalidBatch(ValueError):
    """The request body is not a valid PeekAPI event batch; the message says why."""


class StoreMissing(FileNotFoundError):
    """``EventStore(..., create=False)`` was given a file that is not an event database."""


def _row(event: Any, index: int, received_at: float) -> tuple[Any, ...]:
    problem = event_problem(event)
    if problem is not None:
        raise InvalidBatch(f"event {index}: {problem}")
    values = with_defaults(event)
    values["response_time_ms"] = float(values["response_time_ms"])
    metadata = values["metadata"]
    trace_id = span_id = None
    if metadata is not None:
        trace_id, span_id = metadata.get("trace_id"), metadata.get("span_id")
        if not (isinstance(trace_id, str) and isinstance(span_id, str)):
            trace_id = span_id = None
        values["metadata"] = json.dumps(metadata, separators=(",", ":"))
    return (*values.values(), trace_id, span_id, received_at)


def validate_batch(batch: Any) -> list[tuple[Any, ...]]:
    """Check a decoded request body against the wire format (:mod:`peekapi_otel._schema`).

    Returns the rows to insert; absent optional fields are stored as their defaults
    (null, or 0 for sizes) and unknown fields are ignored. Raises :class:`InvalidBatch`
    naming the first problem, so a bad batch is refused as a whole and nothing from it
    is stored.
    """
    if not isinstance(batch, list):
        raise InvalidBatch("body must be a JSON array of events")
    now = time.time()
    return [_row(event, i, now) for i, event in enumerate(batch)]


class EventStore:
    """Events in one SQLite file (WAL): one writer connection behind a lock, and a fresh
    reader connection per query so the dashboard never waits on ingest.

    Args:
        path: the database file.
        create: create the file and schema if needed; when false a missing file or one
            without an ``events`` table raises :class:`StoreMissing`.
    """

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        if not create:
            if not self.path.is_file():
                raise StoreMissing(f"database {str(self.path)!r} does not exist")
            self._writer = self._connect(mode="rw")
            found = self._writer.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
            ).fetchone()
            if found is None:
                self._writer.close()
                raise StoreMissing(f"{str(self.path)!r} is not a peekapi-otel event database")
            return
        self._writer = self._connect(mode="rwc")
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.execute("PRAGMA synchronous=NORMAL")
        self._writer.executescript(_SCHEMA)
        self._writer.execute(_UNMATCHED_INDEX)

    def _connect(self, mode: str) -> sqlite3.Connection:
        uri = f"{self.path.resolve().as_uri()}?mode={mode}"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    def close(self) -> None:
        with self._lock:
            self._writer.close()

    def insert_rows(self, rows: Sequence[tuple[Any, ...]]) -> tuple[int, int]:
        """Insert rows from :func:`validate_batch` in one transaction.

        Returns ``(accepted, duplicates)``; a duplicate is an event whose
        (trace_id, span_id) pair is already stored, or repeated within ``rows``.
        """
        if not rows:
            return 0, 0
        with self._lock:
            before = self._writer.total_changes
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                self._writer.executemany(_INSERT, rows)
                accepted = self._writer.total_changes - before
                if accepted < len(rows):
                    self._writer.execute(_COUNT_DUPLICATES, (len(rows) - accepted,))
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")
        return accepted, len(rows) - accepted

    def insert_many(self, events: Iterable[Any]) -> tuple[int, int]:
        """Validate and insert wire-format events; see :meth:`insert_rows`."""
        return self.insert_rows(validate_batch(list(events)))

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        # A read transaction on its own connection: every figure of one summary comes from
        # the same snapshot, and WAL lets it run while the writer inserts.
        conn = self._connect(mode="ro")
        try:
            conn.execute("BEGIN")
            yield conn
        finally:
            conn.close()

    def count(self) -> int:
        with self._snapshot() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def duplicates(self) -> int:
        """How many received events were dropped as already stored."""
        with self._snapshot() as conn:
            try:
                row = conn.execute(
                    "SELECT value FROM counters WHERE name = 'duplicates'"
                ).fetchone()
            except sqlite3.OperationalError:  # a database from before the counter existed
                return 0
        return 0 if row is None else int(row[0])

    def pairs(self) -> list[tuple[str, str]]:
        """Every stored (trace_id, span_id) pair, in insertion order."""
        with self._snapshot() as conn:
            rows = conn.execute(
                "SELECT trace_id, span_id FROM events WHERE trace_id IS NOT NULL ORDER BY id"
            ).fetchall()
        return [(str(t), str(s)) for t, s in rows]

    def summary(self, *, latest: int = LATEST_LIMIT) -> dict[str, Any]:
        """Aggregate figures for the dashboard and the report (see ``_summary``).

        Errors are responses with status >= 400 (5xx counted apart as ``server_errors``);
        ``error_rate`` is a percentage rounded to 1 decimal, latencies are milliseconds
        rounded to 2 decimals, and ``p95_ms`` is the nearest-rank 95th percentile.
        """
        with self._snapshot() as conn:
            return summarize(conn, latest=latest)
