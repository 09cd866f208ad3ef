"""Per-minute, per-hour, per-6-hour and per-day rollups, written with the raw events they count.

Three tables, keyed by ``(res, start, method, route)`` where ``res`` is the period in
seconds (60, 3600, 21600, 86400; the consumer tables skip 21600, see
:data:`CONSUMER_LEVELS`) and ``start`` the period's first second (UTC, event time):

- ``rollup_endpoints``: requests per status class, latency sum and a latency sketch;
- ``rollup_consumers``: the same counts per consumer (no sketch, so the consumer list,
  read by every summary, scans narrow rows);
- ``rollup_consumer_sketches``: the latency sketch per consumer and endpoint, keyed
  consumer first so a consumer filter reads only that consumer's rows.

The sketches (``_sketch``: log buckets per status class, so a status filter reads its own
class) are written in batches by ``_sketch_writer``; the counts with every insert.

The 6-hour level is there for the ranges the dashboard asks for most: a rolling 24 h or
7 d range starts and ends mid-day, and each partial day of an endpoint's sketches is read
as up to 3 six-hour rows and 5 hour rows instead of up to 23 hour rows (:func:`pieces`).

``route`` is the event's path, or ``unmatched (404)`` for an unmatched request (see
``_summary``), so a scanner cannot grow the rollups without bound. Anonymous traffic is
stored under the consumer ``""``.
"""

from __future__ import annotations

import datetime
import math
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from peekapi_otel.server._sketch import (
    CLASS_KEY,
    bucket,
    dump,
    merge_sketch,
    parse,
)
from peekapi_otel.server._sketch_writer import CONSUMERS, ENDPOINTS, SketchWriter

RESOLUTIONS: Final = (60, 3600, 21600, 86400)
CONSUMER_LEVELS: Final = (60, 3600, 86400)
"""The consumer rollups and sketches skip the 6-hour level: the consumer dimension is the
large one, and each level is a row more to write per event and a sketch more per
consumer and endpoint; the endpoint rollups, read with their sketches by every view,
keep it."""
ANONYMOUS: Final = ""
VERSION: Final = 2
"""Rollup layout: 1 had no 6-hour level, no status classes in its sketches and no consumer
sketches."""

CONSUMER_SKETCHES_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS rollup_consumer_sketches (
    consumer TEXT NOT NULL, res INTEGER NOT NULL, start INTEGER NOT NULL,
    method TEXT NOT NULL, route TEXT NOT NULL, hist TEXT NOT NULL,
    PRIMARY KEY (consumer, res, start, method, route)
) WITHOUT ROWID;
"""

SCHEMA: Final = (
    """
CREATE TABLE IF NOT EXISTS rollup_endpoints (
    res INTEGER NOT NULL, start INTEGER NOT NULL, method TEXT NOT NULL, route TEXT NOT NULL,
    n INTEGER NOT NULL, s1 INTEGER NOT NULL, s2 INTEGER NOT NULL, s3 INTEGER NOT NULL,
    s4 INTEGER NOT NULL, s5 INTEGER NOT NULL, sum_ms REAL NOT NULL, hist TEXT NOT NULL,
    PRIMARY KEY (res, start, method, route)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_consumers (
    res INTEGER NOT NULL, start INTEGER NOT NULL, method TEXT NOT NULL, route TEXT NOT NULL,
    consumer TEXT NOT NULL,
    n INTEGER NOT NULL, s1 INTEGER NOT NULL, s2 INTEGER NOT NULL, s3 INTEGER NOT NULL,
    s4 INTEGER NOT NULL, s5 INTEGER NOT NULL, sum_ms REAL NOT NULL,
    PRIMARY KEY (res, start, method, route, consumer)
) WITHOUT ROWID;
"""
    + CONSUMER_SKETCHES_SCHEMA
)

UNMATCHED_SQL: Final = (
    "(status_code IN (404, 405) AND instr(path, '{') = 0 AND instr(path, '<') = 0 "
    "AND instr(path, '/:') = 0)"
)


def is_unmatched(path: str, status: int) -> bool:
    """Python twin of :data:`UNMATCHED_SQL`."""
    return status in (404, 405) and "{" not in path and "<" not in path and "/:" not in path


def unmatched_label(status: int) -> str:
    return f"unmatched ({status})"


def route_of(path: str, status: int) -> str:
    return unmatched_label(status) if is_unmatched(path, status) else path


def status_class(status: int) -> int:
    """1 (below 200), 2, 3, 4, or 5 (500 and above)."""
    return 1 if status < 200 else min(status // 100, 5)


def event_second(timestamp: str) -> int | None:
    """Unix second of an event's ISO 8601 timestamp (UTC when it names no zone)."""
    try:
        value = datetime.datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return math.floor(value.timestamp())


def pieces(start: int, end: int, levels: Sequence[int] = RESOLUTIONS) -> list[tuple[int, int, int]]:
    """``[start, end)`` (whole minutes) as the fewest aligned ``(res, first, stop)`` runs."""
    out: list[tuple[int, int, int]] = []

    def cover(lo: int, hi: int, level: int) -> None:
        if lo >= hi:
            return
        if level < 0:
            return
        size = levels[level]
        first = -(-lo // size) * size
        last = hi // size * size
        if first >= last:
            cover(lo, hi, level - 1)
            return
        cover(lo, first, level - 1)
        out.append((size, first, last))
        cover(last, hi, level - 1)

    cover(start, end, len(levels) - 1)
    return out


def pieces_sql(runs: Sequence[tuple[int, int, int]]) -> tuple[str, list[Any]]:
    """A WHERE clause selecting the rollup rows of ``runs`` (see :func:`pieces`)."""
    if not runs:
        return "0", []
    clauses = " OR ".join("(res = ? AND start >= ? AND start < ?)" for _ in runs)
    return f"({clauses})", [v for run in runs for v in run]


_UPSERT_CONSUMERS: Final = """
INSERT INTO rollup_consumers (res, start, method, route, consumer, n, s1, s2, s3, s4, s5, sum_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (res, start, method, route, consumer) DO UPDATE SET
    n = n + excluded.n, s1 = s1 + excluded.s1, s2 = s2 + excluded.s2,
    s3 = s3 + excluded.s3, s4 = s4 + excluded.s4, s5 = s5 + excluded.s5,
    sum_ms = sum_ms + excluded.sum_ms
"""

# The sketch (hist) is written by _sketch_writer, not with the counts.
_UPSERT_ENDPOINTS: Final = """
INSERT INTO rollup_endpoints (res, start, method, route, n, s1, s2, s3, s4, s5, sum_ms, hist)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '{}')
ON CONFLICT (res, start, method, route) DO UPDATE SET
    n = n + excluded.n, s1 = s1 + excluded.s1, s2 = s2 + excluded.s2,
    s3 = s3 + excluded.s3, s4 = s4 + excluded.s4, s5 = s5 + excluded.s5,
    sum_ms = sum_ms + excluded.sum_ms
"""

# Index of the fields in a stored row (see _store._INSERT and db/_pg_store._INSERT).
_METHOD, _PATH, _STATUS, _RT, _CONSUMER, _TIMESTAMP, _RECEIVED = 0, 1, 2, 3, 6, 8, 11

_Key = tuple[int, int, str, str]
_SIX_HOURS: Final = 21600


def filed_under(row: Sequence[Any], at: int = 0) -> tuple[int, str, str, str, int, int, float]:
    """Where the rollups count a stored row (its fields from index ``at``): ``(second,
    method, route, consumer, status class, sketch key, response time)``. The second is
    the event's own, or when it arrived when its timestamp cannot be read; SQLite and
    PostgreSQL both file every event by this one rule."""
    second = event_second(row[at + _TIMESTAMP])
    if second is None:
        second = int(row[at + _RECEIVED])
    status, rt = row[at + _STATUS], row[at + _RT]
    cls = status_class(status)
    route = route_of(row[at + _PATH], status)
    consumer = row[at + _CONSUMER] or ANONYMOUS
    return second, row[at + _METHOD], route, consumer, cls, cls * CLASS_KEY + bucket(rt), rt


RING_SECONDS: Final = 300


class SecondRing:
    """Requests and latency sum per second of event time, for the last minutes, in memory.

    The live per-second chart reads it instead of the raw rows: at thousands of events a
    second, the last minute alone is hundreds of thousands of rows. It is complete from
    ``since`` (when the store was opened) on.
    """

    def __init__(self) -> None:
        self.since = int(time.time())
        self.seconds: dict[int, list[float]] = {}

    def add(self, second: int, rt: float) -> None:
        cell = self.seconds.get(second)
        if cell is None:
            cell = self.seconds[second] = [0, 0.0]
            if len(self.seconds) > 2 * RING_SECONDS:
                newest = max(self.seconds)
                for old in [s for s in self.seconds if s < newest - RING_SECONDS]:
                    del self.seconds[old]
        cell[0] += 1
        cell[1] += rt

    def window(self, first: int, last: int) -> dict[int, tuple[int, float]] | None:
        """``{second: (requests, sum_ms)}`` for ``first..last``, None if not all kept."""
        if first < self.since:
            return None
        cells = dict(self.seconds)  # a copy: the writer adds while this reads
        return {s: (int(cells[s][0]), cells[s][1]) for s in range(first, last + 1) if s in cells}


class RollupWriter:
    """Adds inserted rows to the rollups, on the writer connection, in its transaction.

    Counts are added by SQL in every insert; latencies go to the pending sketch counts
    of :attr:`endpoints` and :attr:`consumers` (see ``_sketch_writer``), written in
    batches. The caller calls :meth:`forget` when its transaction rolls back.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.ring = SecondRing()
        self.endpoints = SketchWriter(ENDPOINTS, clock)
        self.consumers = SketchWriter(CONSUMERS, clock)

    @property
    def dirty(self) -> bool:
        return self.endpoints.dirty

    @property
    def due(self) -> bool:
        """Sketches are held back and the last write is a flush interval old."""
        return self.endpoints.due or self.consumers.due

    def forget(self) -> None:
        self.ring = SecondRing()  # it may hold rows that were rolled back
        self.endpoints.forget()
        self.consumers.forget()

    def add(self, conn: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
        consumers: dict[tuple[int, int, str, str, str], list[Any]] = {}
        endpoints: dict[_Key, list[Any]] = {}
        by_consumer, by_endpoint = self.consumers.pending, self.endpoints.pending
        for row in rows:
            second, method, route, consumer, cls, key, rt = filed_under(row)
            self.ring.add(second, rt)
            for res in RESOLUTIONS:
                start = second // res * res
                if res != _SIX_HOURS:
                    c = consumers.get((res, start, method, route, consumer))
                    if c is None:
                        counts = by_consumer.setdefault((consumer, res, start, method, route), {})
                        c = consumers[(res, start, method, route, consumer)] = [0] * 6 + [
                            0.0,
                            counts,
                        ]
                    c[0] += 1
                    c[cls] += 1
                    c[6] += rt
                    c[7][key] = c[7].get(key, 0) + 1
                e = endpoints.get((res, start, method, route))
                if e is None:
                    counts = by_endpoint.setdefault((res, start, method, route), {})
                    e = endpoints[(res, start, method, route)] = [0] * 6 + [0.0, counts]
                e[0] += 1
                e[cls] += 1
                e[6] += rt
                e[7][key] = e[7].get(key, 0) + 1
        conn.executemany(_UPSERT_CONSUMERS, [(*k, *v[:7]) for k, v in consumers.items()])
        conn.executemany(_UPSERT_ENDPOINTS, [(*k, *v[:7]) for k, v in endpoints.items()])
        for sketches in (self.endpoints, self.consumers):
            if sketches.due:
                sketches.flush(conn)

    def flush(self, conn: sqlite3.Connection, *, consumers: bool = False) -> None:
        """Write the endpoint sketches held back (in the caller's transaction), and the
        consumer sketches as well when asked or due."""
        if self.endpoints.dirty:
            self.endpoints.flush(conn)
        if self.consumers.dirty and (consumers or self.consumers.due):
            self.consumers.flush(conn)

    def recount(self, rows: Iterable[tuple[Any, ...]], *, endpoints: bool, consumers: bool) -> None:
        """Count stored rows (each its id, then its fields) again in the pending endpoint
        or consumer sketches only (see the store's replay)."""
        by_endpoint = self.endpoints.pending if endpoints else None
        by_consumer = self.consumers.pending if consumers else None
        for row in rows:
            second, method, route, consumer, _cls, key, _rt = filed_under(row, at=1)
            for res in RESOLUTIONS:
                start = second // res * res
                if by_endpoint is not None:
                    counts = by_endpoint.setdefault((res, start, method, route), {})
                    counts[key] = counts.get(key, 0) + 1
                if by_consumer is not None and res != _SIX_HOURS:
                    counts = by_consumer.setdefault((consumer, res, start, method, route), {})
                    counts[key] = counts.get(key, 0) + 1


def migrate(conn: sqlite3.Connection, *, raw_complete: bool) -> None:
    """Bring rollups of an earlier :data:`VERSION` to this one, in the caller's transaction.

    With every raw event still stored (no retention ran), the caller rebuilds the rollups
    from them instead. Otherwise the 6-hour endpoint rows are summed from the hour rows (so every
    count stays), and the periods already written keep sketches without status classes
    and without consumer sketches: a status or consumer filter shows no percentile over
    them (see ``_sketch.latencies``).
    """
    conn.execute(CONSUMER_SKETCHES_SCHEMA)  # not executescript(): it would commit
    if not raw_complete:
        six = RESOLUTIONS[2]
        merged: dict[_Key, list[Any]] = {}
        for row in conn.execute(
            "SELECT start, method, route, n, s1, s2, s3, s4, s5, sum_ms, hist "
            "FROM rollup_endpoints WHERE res = 3600"
        ):
            key = (six, int(row[0]) // six * six, row[1], row[2])
            into = merged.setdefault(key, [0] * 6 + [0.0, {}])
            for i in range(7):
                into[i] += row[3 + i]
            merge_sketch(into[7], parse(row[10]))
        conn.executemany(
            "INSERT OR IGNORE INTO rollup_endpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(*k, *v[:7], dump(v[7])) for k, v in merged.items()],
        )
    conn.execute(
        "INSERT OR REPLACE INTO counters (name, value) VALUES ('rollup_version', ?)", (VERSION,)
    )
