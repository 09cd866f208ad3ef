"""The SQLite store's rollups (see ``server._rollup``: minutes, hours, 6 hours (endpoints
only) and days, sketches per status class, consumer sketches) in PostgreSQL, written by
every node of a fleet at once.

The tables have the SQLite columns, so the dashboard's SQLite queries read them as they
are (see ``_pg_views``), and the sketches are stored in the SQLite encoding
(``server._sketch``). What differs is when a sketch is written: a SQLite store is the
only writer of its file and holds the latencies of the last second (or 30 s, for the
consumer sketches) in memory, but here several nodes add to the same rows, and a node
killed at any moment must leave nothing half counted. So every count is added by
``INSERT … ON CONFLICT DO UPDATE`` and every sketch is merged in the transaction that
stores the events: the upsert locks the row and returns its stored sketch, the node adds
its bucket counts and writes it back before the commit. The rollups count exactly the
events committed, by whichever node.

Each statement locks its rows in key order, the same on every node, and every node takes
the tables in the same order, so two nodes adding to the same hour never deadlock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import psycopg

from peekapi_otel.server._rollup import CONSUMER_LEVELS, RESOLUTIONS, VERSION, filed_under
from peekapi_otel.server._sketch import (
    Sketch,
    add_counts,
    dump,
    merge_stored,
    parse,
)

SCHEMA: Final = (
    # Text columns in byte order ("C"), as SQLite compares them: the dashboard lists and
    # sorts the same way on both backends, whatever the database's locale. Room on each
    # page (fillfactor) for the in-place updates every insert makes.
    """
    CREATE TABLE IF NOT EXISTS rollup_endpoints (
        res INTEGER NOT NULL, start BIGINT NOT NULL,
        method TEXT COLLATE "C" NOT NULL, route TEXT COLLATE "C" NOT NULL,
        n BIGINT NOT NULL, s1 BIGINT NOT NULL, s2 BIGINT NOT NULL, s3 BIGINT NOT NULL,
        s4 BIGINT NOT NULL, s5 BIGINT NOT NULL, sum_ms DOUBLE PRECISION NOT NULL,
        hist TEXT NOT NULL,
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
    # Keyed consumer first, as in SQLite: a consumer filter reads that consumer's rows.
    """
    CREATE TABLE IF NOT EXISTS rollup_consumer_sketches (
        consumer TEXT COLLATE "C" NOT NULL, res INTEGER NOT NULL, start BIGINT NOT NULL,
        method TEXT COLLATE "C" NOT NULL, route TEXT COLLATE "C" NOT NULL,
        hist TEXT NOT NULL,
        PRIMARY KEY (consumer, res, start, method, route)
    ) WITH (fillfactor = 50)
    """,
    # A consumer's first and last seen (the consumer view) without a scan of every period.
    "CREATE INDEX IF NOT EXISTS rollup_consumers_seen ON rollup_consumers (res, consumer, start)",
)

_COUNTS: Final = ("n", "s1", "s2", "s3", "s4", "s5")
_ADD_COUNTS: Final = ", ".join(f"{c} = r.{c} + excluded.{c}" for c in (*_COUNTS, "sum_ms"))
_PERIOD: Final = ("res", "start", "method", "route")
_CONSUMER_SKETCH_KEY: Final = ("consumer", *_PERIOD)
_TYPES: Final = {"res": "integer", "start": "bigint"}


def _unnest(columns: Sequence[str]) -> str:
    types = [_TYPES.get(c, "bigint" if c in _COUNTS else "text") for c in columns]
    types = ["float8" if c == "sum_ms" else t for c, t in zip(columns, types, strict=True)]
    return f"unnest({', '.join(f'%b::{t}[]' for t in types)})"


def _upsert(table: str, keys: tuple[str, ...], *, counts: bool, sketch: bool) -> str:
    """An upsert of one row per array element (``unnest``), taken in key order: counts
    are added; a sketch is kept as stored and returned with the key, for the caller to
    merge (see :func:`_merge`)."""
    columns = (*keys, *((*_COUNTS, "sum_ms") if counts else ()), *(("hist",) if sketch else ()))
    order = ", ".join(str(i + 1) for i in range(len(keys)))
    update = _ADD_COUNTS if counts else "hist = r.hist"
    return (
        f"INSERT INTO {table} AS r ({', '.join(columns)}) "
        f"SELECT * FROM {_unnest(columns)} ORDER BY {order} "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {update}"
        + (f" RETURNING {', '.join(keys)}, hist" if sketch else "")
    )


def _set_hist(table: str, keys: tuple[str, ...]) -> str:
    """Sketches written back into rows the transaction has locked already."""
    match = " AND ".join(f"r.{k} = d.{k}" for k in keys)
    return (
        f"UPDATE {table} AS r SET hist = d.hist FROM {_unnest((*keys, 'hist'))} "
        f"AS d ({', '.join(keys)}, hist) WHERE {match}"
    )


_UPSERT_CONSUMERS: Final = _upsert(
    "rollup_consumers", (*_PERIOD, "consumer"), counts=True, sketch=False
)
_UPSERT_ENDPOINTS: Final = _upsert("rollup_endpoints", _PERIOD, counts=True, sketch=True)
_SET_ENDPOINT_SKETCHES: Final = _set_hist("rollup_endpoints", _PERIOD)
# No counts to add here: the update only locks a stored row and returns its sketch.
_UPSERT_CONSUMER_SKETCHES: Final = _upsert(
    "rollup_consumer_sketches", _CONSUMER_SKETCH_KEY, counts=False, sketch=True
)
_SET_CONSUMER_SKETCHES: Final = _set_hist("rollup_consumer_sketches", _CONSUMER_SKETCH_KEY)


_Period = tuple[int, int, str, str]
_Pending = dict[int, int]
"""A sketch's additions: ``{status class * CLASS_KEY + bucket: count}`` (``_sketch``)."""


class Tally:
    """One batch's additions to the rollups, per period, endpoint (and consumer).

    Args:
        counts: tally the counts and the endpoint sketches as well, not only the
            consumer sketches (a database of the previous layout gets those alone).
    """

    def __init__(self, *, counts: bool = True) -> None:
        self._counts = counts
        #: counts: requests, per status class 1..5, then the latency sum.
        self.endpoints: dict[_Period, list[Any]] = {}
        self.sketches: dict[_Period, _Pending] = {}
        self.consumers: dict[tuple[int, int, str, str, str], list[Any]] = {}
        self.consumer_sketches: dict[tuple[str, int, int, str, str], _Pending] = {}

    def count(self, rows: Iterable[Sequence[Any]]) -> Tally:
        for row in rows:
            # The SQLite store's rule, so both put an event in the same periods.
            second, method, route, consumer, cls, key, rt = filed_under(row)
            for res in RESOLUTIONS:
                start = second // res * res
                if self._counts:
                    period = (res, start, method, route)
                    _add(self.endpoints, period, cls, rt)
                    _bump(self.sketches, period, key)
                    if res in CONSUMER_LEVELS:
                        _add(self.consumers, (*period, consumer), cls, rt)
                if res in CONSUMER_LEVELS:
                    _bump(self.consumer_sketches, (consumer, res, start, method, route), key)
        return self

    def write(self, conn: psycopg.Connection[Any]) -> None:
        """Add the tally to the rollup tables, in the caller's transaction."""
        if self.endpoints:
            conn.execute(_UPSERT_CONSUMERS, _columns(self.consumers.items()))
            columns = _columns(self.endpoints.items())
            columns.append(["{}"] * len(self.endpoints))
            _merge(conn, _UPSERT_ENDPOINTS, columns, _SET_ENDPOINT_SKETCHES, self.sketches)
        if self.consumer_sketches:
            pending = self.consumer_sketches
            columns = _transpose((*k, "{}") for k in pending)
            _merge(conn, _UPSERT_CONSUMER_SKETCHES, columns, _SET_CONSUMER_SKETCHES, pending)


def _merge(
    conn: psycopg.Connection[Any],
    upsert: str,
    columns: list[list[Any]],
    write: str,
    pending: dict[Any, _Pending],
) -> None:
    """Lock the rows (a new one with an empty sketch), then write back each one's stored
    sketch with the pending counts added. Once locked, no other node's transaction can
    change a row until this one ends, so nothing is added twice or lost."""
    stored = conn.execute(upsert, columns).fetchall()
    width = len(stored[0]) - 1
    merged = []
    for row in stored:
        key = row[:width]
        sketch = parse(row[width])
        add_counts(sketch, pending[key])
        merged.append((*key, dump(sketch)))
    conn.execute(write, _transpose(merged))


def _bump(into: dict[Any, _Pending], key: Any, bucket_key: int) -> None:
    counts = into.get(key)
    if counts is None:
        counts = into[key] = {}
    counts[bucket_key] = counts.get(bucket_key, 0) + 1


def _add(into: dict[Any, list[Any]], key: Any, cls: int, rt: float) -> None:
    counts = into.get(key)
    if counts is None:
        counts = into[key] = [0, 0, 0, 0, 0, 0, 0.0]
    counts[0] += 1
    counts[cls] += 1
    counts[6] += rt


def _transpose(rows: Iterable[Sequence[Any]]) -> list[list[Any]]:
    """Rows as one list per column, for ``unnest``."""
    return [list(column) for column in zip(*rows, strict=True)]


def _columns(items: Iterable[tuple[tuple[Any, ...], list[Any]]]) -> list[list[Any]]:
    """Rows ``key + counts`` as one list per column."""
    return _transpose((*k, *v) for k, v in items)


_VERSION_SQL: Final = "SELECT value FROM counters WHERE name = 'rollup_version'"
_SET_VERSION: Final = f"""
INSERT INTO counters (name, value) VALUES ('rollup_version', {VERSION})
ON CONFLICT (name) DO UPDATE SET value = excluded.value
"""
_SIX_HOURS: Final = RESOLUTIONS[2]
_SIX_HOUR_ENDPOINTS: Final = f"""
INSERT INTO rollup_endpoints
SELECT {_SIX_HOURS}, start / {_SIX_HOURS} * {_SIX_HOURS}, method, route,
    SUM(n), SUM(s1), SUM(s2), SUM(s3), SUM(s4), SUM(s5), SUM(sum_ms), '{{}}'
FROM rollup_endpoints WHERE res = 3600 GROUP BY 2, 3, 4
ON CONFLICT DO NOTHING
"""


def set_version(conn: psycopg.Connection[Any]) -> None:
    conn.execute(_SET_VERSION)


def migrate(conn: psycopg.Connection[Any], recount: Callable[[bool], None]) -> None:
    """Bring rollups of the previous PostgreSQL layout (no 6-hour level, sketches as JSON
    buckets without status classes, no consumer sketches) to this one, in the caller's
    transaction, as the SQLite store does (``_rollup.migrate``).

    With every raw event still stored (no retention ran) the rollups are rebuilt from
    them: ``recount(True)``. Otherwise the 6-hour endpoint rows are summed from the hour
    rows, so every count stays, and the consumer sketches count the raw events still stored
    (``recount(False)``); the periods written before keep sketches without classes, so a
    status or consumer filter shows no percentile over them rather than a wrong one.
    """
    row = conn.execute(_VERSION_SQL).fetchone()
    if row is not None and int(row[0]) >= VERSION:
        return
    conn.execute("ALTER TABLE rollup_endpoints ALTER COLUMN hist TYPE text USING hist::text")
    conn.execute("DELETE FROM rollup_consumer_sketches")
    raw_since = conn.execute("SELECT 1 FROM counters WHERE name = 'raw_since'").fetchone()
    if raw_since is None:
        conn.execute("DELETE FROM rollup_endpoints")
        conn.execute("DELETE FROM rollup_consumers")
        recount(True)
    else:
        conn.execute(_SIX_HOUR_ENDPOINTS)
        six: dict[_Period, Sketch] = {}
        hours = "SELECT start, method, route, hist FROM rollup_endpoints WHERE res = 3600"
        for start, method, route, hist in conn.execute(hours):
            period = (_SIX_HOURS, start // _SIX_HOURS * _SIX_HOURS, method, route)
            merge_stored(six.setdefault(period, {}), hist)
        if six:
            conn.execute(_SET_ENDPOINT_SKETCHES, _transpose((*k, dump(v)) for k, v in six.items()))
        recount(False)
    set_version(conn)
