"""SQLite event store for the local ingest: validation, de-duplicated inserts, statistics.

:meth:`EventStore.summary` (computed in ``_summary``) is the single source of the figures
shown by the dashboard (``/api/summary``) and by ``peekapi-otel report``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from peekapi_otel._schema import FIELD_NAMES, event_problem, with_defaults
from peekapi_otel.server import _rollup
from peekapi_otel.server._query import Query, parse_query
from peekapi_otel.server._rollup import UNMATCHED_SQL, RollupWriter
from peekapi_otel.server._sketch_writer import WATERMARKS, watermark
from peekapi_otel.server._summary import consumer_view, endpoint_view, summarize

Listener = Callable[[Sequence[tuple[Any, ...]]], None]
"""Called with the rows of each committed insert (new events only), on the writer's thread."""
_BACKFILL_CHUNK: Final = 20_000
_SELECT_ROWS: Final = (
    "SELECT id, method, path, status_code, response_time_ms, request_size, response_size, "
    "consumer_id, metadata, timestamp, trace_id, span_id, received_at FROM events"
)

LATEST_LIMIT: Final = 50
_logger = logging.getLogger(__name__)

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
-- Every figure over a range is read from the rollups (_rollup), so the raw rows carry
-- no per-endpoint or latency index: each one would cost every insert.
DROP INDEX IF EXISTS events_endpoint;
DROP INDEX IF EXISTS events_latency;
-- Event time (the request's start), for the chart and the latest requests.
CREATE INDEX IF NOT EXISTS events_time ON events (julianday(timestamp));
-- Deliveries the unique index turned away: at-least-once delivery made visible.
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

# Unmatched requests (see _summary) in a partial index of their own: their groups, raw
# paths and p95 are read without scanning the matched traffic.
_UNMATCHED_INDEX: Final = f"""
DROP INDEX IF EXISTS events_unmatched;
CREATE INDEX IF NOT EXISTS events_unmatched_time
    ON events (method, status_code, julianday(timestamp), path) WHERE {UNMATCHED_SQL};
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


def _replay_sketches(conn: sqlite3.Connection, rollups: RollupWriter) -> None:
    # In the caller's transaction: count the events after each sketch watermark again
    # (after a crash, a rolled-back insert, or a migration).
    writers = (rollups.endpoints, rollups.consumers)
    marks = [watermark(conn, w.table.watermark) for w in writers]
    last = min((m for m in marks if m is not None), default=None)
    while last is not None:
        rows = conn.execute(
            f"{_SELECT_ROWS} WHERE id > ? ORDER BY id LIMIT ?", (last, _BACKFILL_CHUNK)
        ).fetchall()
        if not rows:
            break
        for which, mark in enumerate(marks):
            if mark is not None:
                rollups.recount(
                    [r for r in rows if r[0] > mark], endpoints=which == 0, consumers=which == 1
                )
        last = int(rows[-1][0])
        for mark, writer in zip(marks, writers, strict=True):
            if mark is not None:
                writer.flush(conn, through=last)
    for writer in writers:
        writer.stale = False


def _replay(conn: sqlite3.Connection, rollups: RollupWriter) -> None:
    # Its own transaction (the caller holds the lock): an insert that then rolls back
    # to find its duplicates must not undo what the replay wrote.
    conn.execute("BEGIN IMMEDIATE")
    try:
        _replay_sketches(conn, rollups)
    except BaseException:
        conn.execute("ROLLBACK")
        rollups.forget()
        raise
    conn.execute("COMMIT")


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
            # A reader (report, demo) next to a running serve: it builds rollups for a
            # database from before them, but leaves the sketches to the writer.
            self._prepare_rollups(repair=False)
            return
        self._writer = self._connect(mode="rwc")
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.execute("PRAGMA synchronous=NORMAL")
        self._writer.executescript(_SCHEMA)
        self._writer.executescript(_UNMATCHED_INDEX)
        self._prepare_rollups()

    def _prepare_rollups(self, *, repair: bool = True) -> None:
        self._rollups = RollupWriter()
        self.listeners: list[Listener] = []
        fresh = (
            self._writer.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'rollup_endpoints'"
            ).fetchone()
            is None
        )
        if fresh:
            # The tables and the backfill's starting point in one transaction, so a
            # backfill cut short (a crash, Ctrl-C) resumes where it stopped.
            self._writer.executescript(
                f"BEGIN IMMEDIATE; {_rollup.SCHEMA}"
                "CREATE TABLE IF NOT EXISTS counters "
                "(name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
                "INSERT OR REPLACE INTO counters (name, value) VALUES ('rollup_backfill', 0);"
                "INSERT OR REPLACE INTO counters (name, value) "
                f"VALUES ('rollup_version', {_rollup.VERSION}), "
                f"('{WATERMARKS[0]}', 0), ('{WATERMARKS[1]}', 0);"
                "COMMIT;"
            )
        else:
            self._migrate_rollups()
        row = self._writer.execute(
            "SELECT value FROM counters WHERE name = 'rollup_backfill'"
        ).fetchone()
        if row is not None and int(row[0]) >= 0:
            self._backfill(int(row[0]))
        elif repair:
            with self._lock:
                _replay(self._writer, self._rollups)

    def _migrate_rollups(self) -> None:
        # Rollups of an earlier layout (see _rollup.VERSION). With every raw event still
        # stored they are rebuilt from them, by the resumable backfill; after a retention
        # pass they are extended from the rollups themselves, so no count is lost.
        version = self._writer.execute(
            "SELECT value FROM counters WHERE name = 'rollup_version'"
        ).fetchone()
        if version is not None and int(version[0]) >= _rollup.VERSION:
            return
        with self._lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                raw_complete = self._raw_since(self._writer) is None
                _rollup.migrate(self._writer, raw_complete=raw_complete)
                if raw_complete:
                    for sql in (
                        "DELETE FROM rollup_endpoints",
                        "DELETE FROM rollup_consumers",
                        "INSERT OR REPLACE INTO counters VALUES ('rollup_backfill', 0)",
                    ):
                        self._writer.execute(sql)
                # The endpoint sketches of the earlier layout count every event; the
                # consumer sketches are new: every raw event still stored is counted.
                newest = self._writer.execute("SELECT COALESCE(MAX(id), 0) FROM events")
                endpoint_mark = 0 if raw_complete else int(newest.fetchone()[0])
                self._writer.executemany(
                    "INSERT OR REPLACE INTO counters VALUES (?, ?)",
                    [(WATERMARKS[0], endpoint_mark), (WATERMARKS[1], 0)],
                )
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    def _backfill(self, last: int) -> None:
        # A database written before the rollups existed: count its stored events once,
        # in chunks, each committed with the last id it counted (-1 once all are).
        while True:
            with self._lock:
                self._writer.execute("BEGIN IMMEDIATE")
                try:
                    rows = self._writer.execute(
                        f"{_SELECT_ROWS} WHERE id > ? ORDER BY id LIMIT ?",
                        (last, _BACKFILL_CHUNK),
                    ).fetchall()
                    if rows:
                        self._rollups.add(self._writer, [r[1:] for r in rows])
                    through = int(rows[-1][0]) if rows else last
                    self._rollups.endpoints.flush(self._writer, through=through)
                    self._rollups.consumers.flush(self._writer, through=through)
                    done = len(rows) < _BACKFILL_CHUNK
                    self._writer.execute(
                        "UPDATE counters SET value = ? WHERE name = 'rollup_backfill'",
                        (-1 if done else rows[-1][0],),
                    )
                except BaseException:
                    self._writer.execute("ROLLBACK")
                    self._rollups.forget()
                    raise
                self._writer.execute("COMMIT")
            if done:
                return
            last = rows[-1][0]

    def _connect(self, mode: str) -> sqlite3.Connection:
        uri = f"{self.path.resolve().as_uri()}?mode={mode}"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    def close(self) -> None:
        with self._lock:
            if self._rollups.dirty or self._rollups.consumers.dirty:
                try:
                    self._writer.execute("BEGIN IMMEDIATE")
                    self._rollups.flush(self._writer, consumers=True)
                    self._writer.execute("COMMIT")
                except sqlite3.Error:
                    _logger.warning("could not write the last latency sketches")
            self._writer.close()

    def insert_rows(self, rows: Sequence[tuple[Any, ...]]) -> tuple[int, int]:
        """Insert rows from :func:`validate_batch` in one transaction.

        Returns ``(accepted, duplicates)``; a duplicate is an event whose
        (trace_id, span_id) pair is already stored, or repeated within ``rows``.
        """
        if not rows:
            return 0, 0
        with self._lock:
            if self._rollups.endpoints.stale or self._rollups.consumers.stale:
                _replay(self._writer, self._rollups)
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                before = self._writer.total_changes
                self._writer.executemany(_INSERT, rows)
                new: Sequence[tuple[Any, ...]] = rows
                if self._writer.total_changes - before < len(rows):
                    # Some were stored already: find which, so the rollups count each
                    # event once (retries resend whole batches, so this path is rare).
                    self._writer.execute("ROLLBACK")
                    self._writer.execute("BEGIN IMMEDIATE")
                    new = [row for row in rows if self._writer.execute(_INSERT, row).rowcount]
                    self._writer.execute(_COUNT_DUPLICATES, (len(rows) - len(new),))
                self._rollups.add(self._writer, new)
            except BaseException:
                self._writer.execute("ROLLBACK")
                self._rollups.forget()
                raise
            self._writer.execute("COMMIT")
            for listener in self.listeners:
                try:
                    listener(new)
                except Exception:  # a subscriber never fails an insert
                    _logger.exception("event listener failed")
        return len(new), len(rows) - len(new)

    def drop_raw_before(self, cutoff: float, *, chunk: int = 5000) -> int:
        """Delete raw events older than ``cutoff`` (Unix seconds, event time); the rollups
        keep counting them. Works in chunks so ingest waits at most one chunk."""
        dropped = 0
        bound = cutoff / 86400.0 + 2440587.5
        while True:
            with self._lock:
                self._writer.execute("BEGIN IMMEDIATE")
                try:
                    cur = self._writer.execute(
                        "DELETE FROM events WHERE id IN (SELECT id FROM events "
                        "WHERE julianday(timestamp) < ? LIMIT ?)",
                        (bound, chunk),
                    )
                    count = cur.rowcount
                    self._writer.execute(
                        "INSERT INTO counters (name, value) VALUES ('raw_since', ?) "
                        "ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)",
                        (int(cutoff),),
                    )
                except BaseException:
                    self._writer.execute("ROLLBACK")
                    raise
                self._writer.execute("COMMIT")
            dropped += count
            if count < chunk:
                return dropped

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

    def flush_sketches(self) -> None:
        """Write the sketches held back past their flush interval (see ``_sketch_writer``)."""
        if self._rollups.due or self._rollups.consumers.due:
            self._current()

    def _current(self, query: Query | None = None) -> None:
        # Endpoint sketches not written yet are written before a view reads them, and the
        # consumer sketches before a view with a consumer filter.
        consumers = query is not None and query.filters.consumer is not None
        held = self._rollups.consumers
        if not (self._rollups.dirty or (consumers and held.dirty) or held.due):
            return
        with self._lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                self._rollups.flush(self._writer, consumers=consumers)
            except BaseException:
                self._writer.execute("ROLLBACK")
                self._rollups.forget()
                raise
            self._writer.execute("COMMIT")

    def _raw_since(self, conn: sqlite3.Connection) -> float | None:
        row = conn.execute("SELECT value FROM counters WHERE name = 'raw_since'").fetchone()
        return None if row is None else float(row[0])

    def endpoint_view(self, query: Query) -> dict[str, Any]:
        self._current(query)
        with self._snapshot() as conn:
            return endpoint_view(conn, query, raw_since=self._raw_since(conn))

    def consumer_view(self, query: Query) -> dict[str, Any]:
        self._current()
        with self._snapshot() as conn:
            return consumer_view(conn, query, raw_since=self._raw_since(conn))

    def summary(self, query: Query | None = None, *, latest: int = LATEST_LIMIT) -> dict[str, Any]:
        """Aggregate figures for the dashboard and the report (see ``_summary``).

        Errors are responses with status >= 400 (5xx counted apart as ``server_errors``);
        ``error_rate`` is a percentage rounded to 1 decimal, latencies are milliseconds
        rounded to 2 decimals, and ``p95_ms`` is the nearest-rank 95th percentile.
        """
        query = parse_query({}) if query is None else query
        self._current(query)
        with self._snapshot() as conn:
            return summarize(
                conn,
                query,
                latest=latest,
                raw_since=self._raw_since(conn),
                ring=self._rollups.ring,
            )
