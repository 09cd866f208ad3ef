"""What the alert rules measure, behind a small interface, and its SQLite implementation.

The time axis is each event's own ``timestamp`` (ISO 8601 UTC text), not when it arrived:
a batch delivered late from a spool still lands in the minute it happened. Bounds are
compared as text at whole seconds (``2026-12-03T08:15:00``), which orders every UTC
spelling the same way (``+00:00``, ``Z``, with or without fractions).
"""

from __future__ import annotations

import contextlib
import datetime
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from peekapi_otel.server.alerts._rules import Selector

# Each filter the rules allow has an index ending in timestamp, so a window or a
# "last seen" look-up reads only the rows it needs, not the table.
SCHEMA: Final = """
CREATE INDEX IF NOT EXISTS events_alerts_time ON events (timestamp);
CREATE INDEX IF NOT EXISTS events_alerts_endpoint_time ON events (method, path, timestamp);
CREATE INDEX IF NOT EXISTS events_alerts_consumer_time ON events (consumer_id, timestamp);
"""


@dataclass(frozen=True)
class Counts:
    requests: int
    matching: int  # requests whose status is in the asked range


@dataclass(frozen=True)
class Latency:
    requests: int
    value_ms: float | None


class MetricSource(Protocol):
    """The figures alert rules need over ``[start, end)`` in Unix seconds."""

    def counts(
        self, selector: Selector, start: float, end: float, statuses: tuple[int, int]
    ) -> Counts: ...

    def latency(self, selector: Selector, start: float, end: float, stat: str) -> Latency: ...

    def last_seen(self, selector: Selector, end: float) -> float | None:
        """Unix time of the latest matching event before ``end``, None if there is none."""
        ...


def iso_second(moment: float) -> str:
    return datetime.datetime.fromtimestamp(int(moment), datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S"
    )


def parse_timestamp(text: str) -> float | None:
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.timestamp()


def rank_offset(percent: int, n: int) -> int:
    """0-based index of the nearest-rank ``percent``-th percentile among ``n`` values."""
    return max(0, (percent * n + 99) // 100 - 1)


def _where(selector: Selector, start: float | None, end: float) -> tuple[str, list[Any]]:
    clauses = ["timestamp < ?"]
    params: list[Any] = [iso_second(end)]
    if start is not None:
        clauses.append("timestamp >= ?")
        params.append(iso_second(start))
    if selector.method is not None:
        clauses.append("method = ?")
        params.append(selector.method)
    if selector.path is not None:
        clauses.append("path GLOB ?" if "*" in selector.path else "path = ?")
        params.append(selector.path)
    if selector.consumer is not None:
        clauses.append("consumer_id = ?")
        params.append(selector.consumer)
    return " AND ".join(clauses), params


class SqliteMetrics:
    """:class:`MetricSource` over the ``events`` table of the serve database.

    Each call reads on its own short-lived connection, so a slow query never holds the
    ingest writer, and WAL lets it run while events are inserted.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def create_indexes(self, conn: sqlite3.Connection) -> None:
        conn.executescript(SCHEMA)

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("BEGIN")
            yield conn
        finally:
            conn.close()

    def counts(
        self, selector: Selector, start: float, end: float, statuses: tuple[int, int]
    ) -> Counts:
        where, params = _where(selector, start, end)
        sql = f"SELECT COUNT(*), SUM(status_code BETWEEN ? AND ?) FROM events WHERE {where}"
        with self._read() as conn:
            n, matching = conn.execute(sql, [*statuses, *params]).fetchone()
        return Counts(int(n), int(matching or 0))

    def latency(self, selector: Selector, start: float, end: float, stat: str) -> Latency:
        where, params = _where(selector, start, end)
        with self._read() as conn:
            n, avg = conn.execute(
                f"SELECT COUNT(*), AVG(response_time_ms) FROM events WHERE {where}", params
            ).fetchone()
            if stat == "avg" or not n:
                return Latency(int(n), None if avg is None else float(avg))
            row = conn.execute(
                f"SELECT response_time_ms FROM events WHERE {where} "
                "ORDER BY response_time_ms LIMIT 1 OFFSET ?",
                [*params, rank_offset(int(stat[1:]), int(n))],
            ).fetchone()
        return Latency(int(n), float(row[0]))

    def last_seen(self, selector: Selector, end: float) -> float | None:
        where, params = _where(selector, None, end)
        with self._read() as conn:
            row = conn.execute(f"SELECT MAX(timestamp) FROM events WHERE {where}", params)
            latest = row.fetchone()[0]
        return None if latest is None else parse_timestamp(str(latest))
