"""Per-minute, per-hour, per-6-hour and per-day rollups, written with the raw events they count.

Three tables, keyed by ``(res, start, method, route)`` where ``res`` is the period in
seconds (60, 3600, 21600, 86400) and ``start`` the period's first second (UTC, event time):

- ``rollup_endpoints``: requests per status class, latency sum and a latency sketch;
- ``rollup_consumers``: the same counts per consumer as well (no sketch, so the consumer
  list, read by every summary, scans narrow rows);
- ``rollup_consumer_sketches``: the latency sketch per consumer, keyed consumer first so a
  consumer filter reads only that consumer's rows. The consumer dimension is the large
  one: these sketches are kept in memory and written every
  :data:`CONSUMER_SKETCH_FLUSH_SECONDS` (and before a read that needs them), never per
  insert.

The 6-hour level exists for the ranges the dashboard asks for most: a rolling 24 h or 7 d
range starts and ends mid-day, and its two partial days are read as up to 3 six-hour rows
and 5 hour rows each instead of up to 23 hour rows (:func:`pieces`).

``route`` is the event's path, or ``unmatched (404)`` for an unmatched request (see
``_summary``), so a scanner cannot grow the rollups without bound. Anonymous traffic is
stored under the consumer ``""``.

The latency sketch, per status class so a status filter reads its own class, is
described in ``_sketch``.
"""

from __future__ import annotations

import datetime
import math
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from peekapi_otel.server._consumer_sketches import ConsumerSketches
from peekapi_otel.server._consumer_sketches import Key as ConsumerKey
from peekapi_otel.server._sketch import (
    CLASS_KEY,
    Sketch,
    add_counts,
    bucket,
    dump,
    merge_sketch,
    parse,
)

RESOLUTIONS: Final = (60, 3600, 21600, 86400)
ANONYMOUS: Final = ""
_CACHE_LIMIT: Final = 20_000
VERSION: Final = 2
"""Rollup layout: 1 had no 6-hour level, no class in sketch keys and no consumer sketches."""

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


def merge(into: dict[str, int], other: dict[str, int]) -> None:
    get = into.get
    for key, count in other.items():
        into[key] = get(key, 0) + count


def event_second(timestamp: str) -> int | None:
    """Unix second of an event's ISO 8601 timestamp (UTC when it names no zone)."""
    try:
        value = datetime.datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return math.floor(value.timestamp())


def pieces(start: int, end: int) -> list[tuple[int, int, int]]:
    """``[start, end)`` (whole minutes) as the fewest aligned ``(res, first, stop)`` runs."""
    out: list[tuple[int, int, int]] = []

    def cover(lo: int, hi: int, level: int) -> None:
        if lo >= hi:
            return
        if level < 0:
            return
        size = RESOLUTIONS[level]
        first = -(-lo // size) * size
        last = hi // size * size
        if first >= last:
            cover(lo, hi, level - 1)
            return
        cover(lo, first, level - 1)
        out.append((size, first, last))
        cover(last, hi, level - 1)

    cover(start, end, len(RESOLUTIONS) - 1)
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

_UPSERT_ENDPOINTS: Final = """
INSERT INTO rollup_endpoints (res, start, method, route, n, s1, s2, s3, s4, s5, sum_ms, hist)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (res, start, method, route) DO UPDATE SET
    n = n + excluded.n, s1 = s1 + excluded.s1, s2 = s2 + excluded.s2,
    s3 = s3 + excluded.s3, s4 = s4 + excluded.s4, s5 = s5 + excluded.s5,
    sum_ms = sum_ms + excluded.sum_ms,
    hist = CASE WHEN excluded.res = 60 THEN excluded.hist ELSE hist END
"""

_WRITE_SKETCH: Final = """
UPDATE rollup_endpoints SET hist = ? WHERE res = ? AND start = ? AND method = ? AND route = ?
"""

_READ_SKETCH: Final = """
SELECT hist FROM rollup_endpoints WHERE res = ? AND start = ? AND method = ? AND route = ?
"""

SKETCH_FLUSH_SECONDS: Final = 1.0
"""How long an hour or day sketch may lag its minute sketches (see RollupWriter)."""

# Index of the fields in a stored row (see _store._INSERT).
_METHOD, _PATH, _STATUS, _RT, _CONSUMER, _TIMESTAMP, _RECEIVED = 0, 1, 2, 3, 6, 8, 11

_Key = tuple[int, int, str, str]


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

    Counts are added by SQL in every insert. A sketch is merged, not summed, so the
    writer keeps the sketches it wrote in memory instead of reading each back, and knows
    the newest period of each resolution: a row for a later period cannot exist yet, so
    live traffic never reads one. Minute sketches are written with every insert; hour
    and day sketches, which grow large and change with every insert, at most once per
    :data:`SKETCH_FLUSH_SECONDS` (still inside an insert's transaction). After a crash
    :meth:`repair` rebuilds the newest hour and day sketches from the minute ones.
    The caller calls :meth:`forget` when its transaction rolls back. The consumer
    sketches are held in :attr:`consumers` (see ``_consumer_sketches``).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._sketches: dict[_Key, Sketch] = {}
        self._dirty: set[_Key] = set()
        self._newest: dict[int, int] | None = None
        self._flushed = clock()
        self.ring = SecondRing()
        self.consumers = ConsumerSketches(clock)

    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

    @property
    def due(self) -> bool:
        """Sketches are held back and the last write is a flush interval old."""
        return bool(self._dirty) and self._clock() - self._flushed >= SKETCH_FLUSH_SECONDS

    def forget(self) -> None:
        self.ring = SecondRing()  # it may hold rows that were rolled back
        self._sketches.clear()
        self._dirty.clear()
        self._newest = None
        self.consumers.forget()

    def _load_newest(self, conn: sqlite3.Connection) -> dict[int, int]:
        newest: dict[int, int] = {}
        for res in RESOLUTIONS:
            row = conn.execute(
                "SELECT MAX(start) FROM rollup_endpoints WHERE res = ?", (res,)
            ).fetchone()
            newest[res] = -1 if row[0] is None else int(row[0])
        return newest

    def _sketch(self, conn: sqlite3.Connection, key: _Key, newest: dict[int, int]) -> Sketch:
        sketch = self._sketches.get(key)
        if sketch is None:
            sketch = {}
            if key[1] <= newest[key[0]]:
                found = conn.execute(_READ_SKETCH, key).fetchone()
                if found is not None:
                    sketch = parse(found[0])
            self._sketches[key] = sketch
        return sketch

    def add(self, conn: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
        consumers: dict[tuple[int, int, str, str, str], list[Any]] = {}
        endpoints: dict[_Key, list[Any]] = {}
        for row in rows:
            second = event_second(row[_TIMESTAMP])
            if second is None:
                second = int(row[_RECEIVED])
            method, status, rt = row[_METHOD], row[_STATUS], row[_RT]
            route = route_of(row[_PATH], status)
            consumer = row[_CONSUMER] or ANONYMOUS
            cls = status_class(status)
            key = cls * CLASS_KEY + bucket(rt)
            self.ring.add(second, rt)
            for res in RESOLUTIONS:
                start = second // res * res
                c = consumers.get((res, start, method, route, consumer))
                if c is None:
                    c = consumers[(res, start, method, route, consumer)] = [0] * 6 + [0.0, {}]
                c[0] += 1
                c[cls] += 1
                c[6] += rt
                c[7][key] = c[7].get(key, 0) + 1
                e = endpoints.get((res, start, method, route))
                if e is None:
                    e = endpoints[(res, start, method, route)] = [0] * 6 + [0.0, {}]
                e[0] += 1
                e[cls] += 1
                e[6] += rt
                e[7][key] = e[7].get(key, 0) + 1
        conn.executemany(_UPSERT_CONSUMERS, [(*k, *v[:7]) for k, v in consumers.items()])
        if self._newest is None:
            self._newest = self._load_newest(conn)
        newest = self._newest
        self.consumers.add(conn, {(k[4], *k[:4]): v[7] for k, v in consumers.items()}, newest)
        if len(self._sketches) > _CACHE_LIMIT:
            self._flush(conn)
            self._sketches.clear()
        out = []
        for k, v in endpoints.items():
            sketch = self._sketch(conn, k, newest)
            add_counts(sketch, v[7])
            text = "{}"
            if k[0] == RESOLUTIONS[0]:
                text = dump(sketch)
            else:
                self._dirty.add(k)
            out.append((*k, *v[:7], text))
        conn.executemany(_UPSERT_ENDPOINTS, out)
        for k in endpoints:
            newest[k[0]] = max(newest[k[0]], k[1])
        if self._clock() - self._flushed >= SKETCH_FLUSH_SECONDS:
            self._flush(conn)
        if self.consumers.due:
            self.consumers.flush(conn)

    def _flush(self, conn: sqlite3.Connection) -> None:
        if self._dirty:
            conn.executemany(
                _WRITE_SKETCH,
                [(dump(self._sketches[k]), *k) for k in self._dirty if k in self._sketches],
            )
            self._dirty.clear()
        self._flushed = self._clock()

    def flush(self, conn: sqlite3.Connection, *, consumers: bool = False) -> None:
        """Write the hour and day sketches not written yet (in the caller's transaction),
        and the consumer sketches as well when asked or due."""
        self._flush(conn)
        if consumers or self.consumers.due:
            self.consumers.flush(conn)

    def repair(self, conn: sqlite3.Connection) -> None:
        """Rebuild the newest hour and day sketches from the minute sketches (at start,
        in the caller's transaction): they may miss up to a second of inserts after a crash.
        """
        for res in RESOLUTIONS[1:]:
            row = conn.execute(
                "SELECT MAX(start) FROM rollup_endpoints WHERE res = ?", (res,)
            ).fetchone()
            if row[0] is None:
                continue
            start = int(row[0])
            merged: dict[tuple[str, str], Sketch] = {}
            for method, route, hist in conn.execute(
                "SELECT method, route, hist FROM rollup_endpoints "
                "WHERE res = ? AND start >= ? AND start < ?",
                (RESOLUTIONS[0], start, start + res),
            ):
                merge_sketch(merged.setdefault((method, route), {}), parse(hist))
            conn.executemany(
                _WRITE_SKETCH,
                [(dump(h), res, start, m, r) for (m, r), h in merged.items()],
            )

    def sketch_consumers(self, conn: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
        """Count stored rows again in the consumer sketches only (see the store's replay)."""
        counted: dict[ConsumerKey, dict[int, int]] = {}
        for row in rows:
            second = event_second(row[_TIMESTAMP])
            if second is None:
                second = int(row[_RECEIVED])
            route = route_of(row[_PATH], row[_STATUS])
            consumer = row[_CONSUMER] or ANONYMOUS
            key = status_class(row[_STATUS]) * CLASS_KEY + bucket(row[_RT])
            for res in RESOLUTIONS:
                at = (consumer, res, second // res * res, row[_METHOD], route)
                hist = counted.setdefault(at, {})
                hist[key] = hist.get(key, 0) + 1
        if self._newest is None:
            self._newest = self._load_newest(conn)
        self.consumers.add(conn, counted, self._newest)


def migrate(conn: sqlite3.Connection, *, raw_complete: bool) -> None:
    """Bring rollups of an earlier :data:`VERSION` to this one, in the caller's transaction.

    With every raw event still stored (no retention ran), the caller rebuilds the rollups
    from them instead. Otherwise the 6-hour rows are summed from the hour rows (so every
    count stays), and the periods already written keep sketches without status classes
    and without consumer sketches: a status or consumer filter shows no percentile over
    them (see ``_sketch.latencies``).
    """
    conn.execute(CONSUMER_SKETCHES_SCHEMA)  # not executescript(): it would commit
    if not raw_complete:
        six = RESOLUTIONS[2]
        conn.execute(
            "INSERT OR IGNORE INTO rollup_consumers "
            f"SELECT {six}, start / {six} * {six}, method, route, consumer, "
            "SUM(n), SUM(s1), SUM(s2), SUM(s3), SUM(s4), SUM(s5), SUM(sum_ms) "
            "FROM rollup_consumers WHERE res = 3600 GROUP BY 2, 3, 4, 5"
        )
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
