"""The SQLite store's per-minute, per-hour and per-day rollups (see ``server._rollup``), in
PostgreSQL, written by every node of a fleet at once.

The tables have the SQLite columns, so the dashboard's SQLite queries read them as they
are (see ``_pg_views``). What differs is how a write merges: a SQLite store is the only
writer of its file and keeps the hour and day sketches in memory, but here several nodes
add to the same rows. So every count and every sketch is added, never overwritten, by
``INSERT … ON CONFLICT DO UPDATE`` in the transaction that stores the events: a sketch
is a set of bucket counts, and the sum of two nodes' bucket counts is the sketch of all
their values, with the same 1 % guarantee. Nothing is held in memory, so a node killed
at any moment leaves rollups that count exactly the events committed.

Each statement locks its rows in key order, the same on every node, so two nodes adding
to the same hour never deadlock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Final

import psycopg

from peekapi_otel.server._rollup import (
    ANONYMOUS,
    RESOLUTIONS,
    bucket,
    event_second,
    route_of,
    status_class,
)

SCHEMA: Final = (
    # Text columns in byte order ("C"), as SQLite compares them: the dashboard lists and
    # sorts the same way on both backends, whatever the database's locale.
    """
    CREATE TABLE IF NOT EXISTS rollup_endpoints (
        res INTEGER NOT NULL, start BIGINT NOT NULL,
        method TEXT COLLATE "C" NOT NULL, route TEXT COLLATE "C" NOT NULL,
        n BIGINT NOT NULL, s1 BIGINT NOT NULL, s2 BIGINT NOT NULL, s3 BIGINT NOT NULL,
        s4 BIGINT NOT NULL, s5 BIGINT NOT NULL, sum_ms DOUBLE PRECISION NOT NULL,
        hist JSONB NOT NULL,
        PRIMARY KEY (res, start, method, route)
    ) WITH (fillfactor = 50)
    """,
    """
    CREATE TABLE IF NOT EXISTS rollup_consumers (
        res INTEGER NOT NULL, start BIGINT NOT NULL,
        method TEXT COLLATE "C" NOT NULL, route TEXT COLLATE "C" NOT NULL,
        consumer TEXT COLLATE "C" NOT NULL,
        n BIGINT NOT NULL, s1 BIGINT NOT NULL, s2 BIGINT NOT NULL, s3 BIGINT NOT NULL,
        s4 BIGINT NOT NULL, s5 BIGINT NOT NULL, sum_ms DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (res, start, method, route, consumer)
    ) WITH (fillfactor = 50)
    """,
    # A consumer's first and last seen (the consumer view) without a scan of every period.
    "CREATE INDEX IF NOT EXISTS rollup_consumers_seen ON rollup_consumers (res, consumer, start)",
)

_COUNTS: Final = ("n", "s1", "s2", "s3", "s4", "s5")
_ADD_COUNTS: Final = ", ".join(f"{c} = r.{c} + excluded.{c}" for c in (*_COUNTS, "sum_ms"))


def _upsert(table: str, keys: tuple[str, ...], sketch: bool) -> str:
    """An upsert of one row per array element (``unnest``), taken in key order."""
    columns = (*keys, *_COUNTS, "sum_ms", *(("hist",) if sketch else ()))
    types = ("integer", "bigint", *["text"] * (len(keys) - 2), *["bigint"] * len(_COUNTS))
    types += ("float8", *(("jsonb",) if sketch else ()))
    order = ", ".join(str(i + 1) for i in range(len(keys)))
    return (
        f"INSERT INTO {table} AS r ({', '.join(columns)}) "
        f"SELECT * FROM unnest({', '.join(f'%s::{t}[]' for t in types)}) ORDER BY {order} "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {_ADD_COUNTS}"
    )


_PERIOD: Final = ("res", "start", "method", "route")
_UPSERT_CONSUMERS: Final = _upsert("rollup_consumers", (*_PERIOD, "consumer"), sketch=False)
# Two sketches merge by adding the counts of the buckets they share.
_UPSERT_ENDPOINTS: Final = (
    _upsert("rollup_endpoints", _PERIOD, sketch=True)
    + """,
    hist = (
        SELECT jsonb_object_agg(key, total) FROM (
            SELECT key, SUM(value::bigint) AS total FROM (
                SELECT * FROM jsonb_each_text(r.hist)
                UNION ALL SELECT * FROM jsonb_each_text(excluded.hist)
            ) AS both_sketches GROUP BY key
        ) AS sums
    )
"""
)

# Index of the fields in a stored row (see _pg_store._INSERT and _store._INSERT).
_METHOD, _PATH, _STATUS, _RT, _CONSUMER, _TIMESTAMP, _RECEIVED = 0, 1, 2, 3, 6, 8, 11

_Period = tuple[int, int, str, str]


class Tally:
    """One batch's additions to the rollups, per period, endpoint (and consumer)."""

    def __init__(self) -> None:
        #: counts: requests, per status class 1..5, then the latency sum.
        self.endpoints: dict[_Period, list[Any]] = {}
        self.sketches: dict[_Period, dict[str, int]] = {}
        self.consumers: dict[tuple[int, int, str, str, str], list[Any]] = {}

    def count(self, rows: Iterable[Sequence[Any]]) -> Tally:
        for row in rows:
            # The event's own time, or when it arrived when its timestamp cannot be read:
            # the SQLite store's rule, so both put an event in the same periods.
            second = event_second(row[_TIMESTAMP])
            if second is None:
                second = int(row[_RECEIVED])
            status, rt = row[_STATUS], row[_RT]
            route = route_of(row[_PATH], status)
            cls = status_class(status)
            key = str(bucket(rt))
            for res in RESOLUTIONS:
                period = (res, second // res * res, row[_METHOD], route)
                _add(self.endpoints, period, cls, rt)
                sketch = self.sketches.setdefault(period, {})
                sketch[key] = sketch.get(key, 0) + 1
                _add(self.consumers, (*period, row[_CONSUMER] or ANONYMOUS), cls, rt)
        return self

    def write(self, conn: psycopg.Connection[Any]) -> None:
        """Add the tally to the rollup tables, in the caller's transaction."""
        if not self.endpoints:
            return
        conn.execute(_UPSERT_CONSUMERS, _columns(self.consumers.items()))
        columns = _columns(self.endpoints.items())
        sketches = self.sketches
        columns.append([json.dumps(sketches[k], separators=(",", ":")) for k in self.endpoints])
        conn.execute(_UPSERT_ENDPOINTS, columns)


def _add(into: dict[Any, list[Any]], key: Any, cls: int, rt: float) -> None:
    counts = into.get(key)
    if counts is None:
        counts = into[key] = [0, 0, 0, 0, 0, 0, 0.0]
    counts[0] += 1
    counts[cls] += 1
    counts[6] += rt


def _columns(items: Iterable[tuple[tuple[Any, ...], list[Any]]]) -> list[list[Any]]:
    """Rows ``key + counts`` as one list per column, for ``unnest``."""
    return [list(column) for column in zip(*((*k, *v) for k, v in items), strict=True)]
