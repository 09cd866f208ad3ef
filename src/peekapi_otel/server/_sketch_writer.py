"""Latency sketches held in memory by the writer and written in batches.

A sketch is merged, not summed, so SQL cannot add to it the way it adds counts. The
writer adds each event's bucket to a pending count per sketch (one dictionary update per
resolution), and :meth:`SketchWriter.flush` merges them into the stored sketches, in the
caller's transaction: the endpoint sketches every :data:`ENDPOINT_FLUSH_SECONDS` and
before every read, the consumer sketches (the large dimension: at 8,000 events/s from 200
consumers about a thousand consumer/endpoint pairs change every second, at each
resolution) every :data:`CONSUMER_FLUSH_SECONDS` and before a read with a consumer filter.
Encoding the minute sketches with every insert, as the previous layout did, took 14 % of
the insert path (cProfile, 300 batches of 100 ``benchmarks/dashboard.py`` events).

Each kind has a watermark in ``counters``: the last event id its written sketches
include. After a crash or a rolled-back insert the events after it are counted again
from the raw rows (the store's replay), so none is lost or counted twice.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from peekapi_otel.server._sketch import Sketch, add_counts, dump, parse

ENDPOINT_FLUSH_SECONDS: Final = 1.0
CONSUMER_FLUSH_SECONDS: Final = 30.0
_CACHE_LIMIT: Final = 20_000


@dataclass(frozen=True)
class SketchTable:
    """Where one kind of sketch lives; ``read``/``write`` take the key's fields as
    ``?1``… and the sketch as the last parameter."""

    read: str
    write: str
    watermark: str
    interval: float


ENDPOINTS: Final = SketchTable(
    read="SELECT hist FROM rollup_endpoints WHERE res = ?1 AND start = ?2 "
    "AND method = ?3 AND route = ?4",
    write="UPDATE rollup_endpoints SET hist = ?5 WHERE res = ?1 AND start = ?2 "
    "AND method = ?3 AND route = ?4",
    watermark="endpoint_sketch_id",
    interval=ENDPOINT_FLUSH_SECONDS,
)
CONSUMERS: Final = SketchTable(
    read="SELECT hist FROM rollup_consumer_sketches WHERE consumer = ?1 AND res = ?2 "
    "AND start = ?3 AND method = ?4 AND route = ?5",
    write="INSERT OR REPLACE INTO rollup_consumer_sketches "
    "(consumer, res, start, method, route, hist) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    watermark="consumer_sketch_id",
    interval=CONSUMER_FLUSH_SECONDS,
)
WATERMARKS: Final = (ENDPOINTS.watermark, CONSUMERS.watermark)


def watermark(conn: sqlite3.Connection, name: str) -> int | None:
    row = conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
    return None if row is None else int(row[0])


class SketchWriter:
    """The counts added to each sketch of one table since it was last written.

    The writer adds to :attr:`pending` directly. The sketches written last are kept
    (up to a limit), so a flush reads back only the ones it has not seen. ``stale`` is
    true until the events after the watermark are counted again (at start, and after
    :meth:`forget`); the store replays them before its next insert.
    """

    def __init__(self, table: SketchTable, clock: Callable[[], float] = time.monotonic) -> None:
        self.table = table
        self._clock = clock
        self.pending: dict[tuple[Any, ...], dict[int, int]] = {}
        self._written: dict[tuple[Any, ...], Sketch] = {}
        self._flushed = clock()
        self.stale = True

    @property
    def dirty(self) -> bool:
        return bool(self.pending)

    @property
    def due(self) -> bool:
        return bool(self.pending) and self._clock() - self._flushed >= self.table.interval

    def forget(self) -> None:
        """Drop what may belong to a rolled-back transaction."""
        self.pending.clear()
        self._written.clear()
        self.stale = True

    def flush(self, conn: sqlite3.Connection, through: int | None = None) -> None:
        """Write the pending counts and the watermark: ``through``, or the newest event id."""
        if self.pending:
            if len(self._written) > _CACHE_LIMIT:
                self._written.clear()
            rows = []
            for key, counts in self.pending.items():
                sketch = self._written.get(key)
                if sketch is None:
                    found = conn.execute(self.table.read, key).fetchone()
                    sketch = self._written[key] = {} if found is None else parse(found[0])
                add_counts(sketch, counts)
                rows.append((*key, dump(sketch)))
            conn.executemany(self.table.write, rows)
            self.pending.clear()
        self._flushed = self._clock()
        if through is None:
            if self.stale:  # the events after the watermark are not all counted yet
                return
            through = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])
        conn.execute(
            "INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)",
            (self.table.watermark, through),
        )
