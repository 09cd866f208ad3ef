"""Latency sketches per consumer and endpoint (``rollup_consumer_sketches``): what a
consumer filter reads its p50/p95/p99 from.

The consumer dimension is the large one: at 8,000 events/s from 200 consumers about a
thousand consumer/endpoint pairs change every second, at each resolution. Writing their
sketches with every insert, as the endpoint sketches are, would encode thousands of them
a second. They are kept in memory and written every :data:`FLUSH_SECONDS` instead, and
before a read that needs them, in the caller's transaction. The counter
``consumer_sketch_id`` holds the last event id the written sketches include: after a
crash or a rolled-back insert the events after it are counted again from the raw rows
(the store's replay), so none is lost or counted twice.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Final

from peekapi_otel.server._sketch import Sketch, add_counts, dump, parse

FLUSH_SECONDS: Final = 10.0
WATERMARK: Final = "consumer_sketch_id"
_CACHE_LIMIT: Final = 50_000

Key = tuple[str, int, int, str, str]
"""consumer, res, start, method, route"""

_READ: Final = """
SELECT hist FROM rollup_consumer_sketches
WHERE consumer = ? AND res = ? AND start = ? AND method = ? AND route = ?
"""
_WRITE: Final = """
INSERT OR REPLACE INTO rollup_consumer_sketches (consumer, res, start, method, route, hist)
VALUES (?, ?, ?, ?, ?, ?)
"""
_SET_WATERMARK: Final = "INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)"


def watermark(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT value FROM counters WHERE name = ?", (WATERMARK,)).fetchone()
    return None if row is None else int(row[0])


class ConsumerSketches:
    """The consumer sketches changed since the last write, and the ones read back for them.

    ``stale`` is true until the events after the watermark have been counted again
    (at start, and after :meth:`forget`); the store replays them before its next insert.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._sketches: dict[Key, Sketch] = {}
        self._dirty: set[Key] = set()
        self._flushed = clock()
        self.stale = True

    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

    @property
    def due(self) -> bool:
        return bool(self._dirty) and self._clock() - self._flushed >= FLUSH_SECONDS

    def forget(self) -> None:
        self._sketches.clear()
        self._dirty.clear()
        self.stale = True

    def add(
        self,
        conn: sqlite3.Connection,
        counted: dict[Key, dict[int, int]],
        newest: dict[int, int],
    ) -> None:
        """Merge ``counted`` (new events) into the sketches; ``newest`` is the newest stored
        period per resolution before them: a later period has no stored sketch to read."""
        sketches = self._sketches
        for key, hist in counted.items():
            sketch = sketches.get(key)
            if sketch is None:
                sketch = {}
                if key[2] <= newest.get(key[1], -1):
                    found = conn.execute(_READ, key).fetchone()
                    if found is not None:
                        sketch = parse(found[0])
                sketches[key] = sketch
            add_counts(sketch, hist)
            self._dirty.add(key)
        if len(sketches) > _CACHE_LIMIT:
            self.flush(conn)
            sketches.clear()

    def flush(self, conn: sqlite3.Connection, through: int | None = None) -> None:
        """Write the changed sketches and the watermark: ``through``, or the newest event id."""
        if self._dirty:
            conn.executemany(
                _WRITE,
                [(*k, dump(self._sketches[k])) for k in self._dirty if k in self._sketches],
            )
            self._dirty.clear()
        if through is None:
            if self.stale:  # the events after the watermark are not all counted yet
                return
            through = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])
        conn.execute(_SET_WATERMARK, (WATERMARK, through))
        self._flushed = self._clock()
