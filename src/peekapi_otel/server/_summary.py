"""The figures the dashboard (``/api/summary``) and ``peekapi-otel report`` show.

Time is the event's own ``timestamp`` (when the request started), never the moment the
batch reached the ingest: an exporter sends every few seconds, and a database replayed
with ``serve --db`` was received long ago.

Unmatched requests: a scanner probing ``/a``, ``/b``, ... would give every probe its own
endpoint row. An event does not say whether a route matched, so the rule is: a 404 or
405 answer whose path is not a route template (no ``{param}``, ``<param>`` or ``:param``)
is *unmatched*. Unmatched requests form one row per method and status, shown as
``unmatched (404)``; their raw paths stay stored and are listed with the row. A route
template answering 404 (``/items/{item_id}`` for a missing item) stays its own endpoint.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any, Final

from peekapi_otel.server._query import Filters, Query
from peekapi_otel.server._rollup import (
    ANONYMOUS,
    UNMATCHED_SQL,
    SecondRing,
    pieces,
    pieces_sql,
    route_of,
    unmatched_label,
)
from peekapi_otel.server._sketch import (
    Sketch,
    count,
    latencies,
    mean,
    merge_sketch,
    merge_stored,
    quantiles,
)
from peekapi_otel.server._timeline import timeline
from peekapi_otel.server._where import EXACT_LIMIT, ms, raw_where, rollup_where, sketch_where

__all__ = ["UNMATCHED_SQL", "p95_offset", "summarize", "unmatched_label"]

UNMATCHED_PATHS: Final = 20
"""Raw paths listed per unmatched group, most requested first."""
TOP_CONSUMERS: Final = 10

_COUNT_COLUMNS: Final = "SUM(n), SUM(s1), SUM(s2), SUM(s3), SUM(s4), SUM(s5), SUM(sum_ms)"


def p95_offset(n: int) -> int:
    """0-based index of the nearest-rank 95th percentile among ``n`` sorted values.

    The rank is ceil(0.95 * n), computed in integers so float rounding cannot move it.
    """
    return max(0, (95 * n + 99) // 100 - 1)


def _rank(values: Sequence[float], percent: int) -> float | None:
    if not values:
        return None
    return values[max(0, (percent * len(values) + 99) // 100 - 1)]


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


class _Counts:
    """Requests per status class and the latency sum of one group of rollup rows."""

    __slots__ = ("classes", "hist", "n", "sum_ms")

    def __init__(self) -> None:
        self.n = 0
        self.classes = [0, 0, 0, 0, 0, 0]
        self.sum_ms = 0.0
        self.hist: Sketch = {}

    def add(self, row: Sequence[Any], hist: str | None = None) -> None:
        self.n += int(row[0] or 0)
        for i in range(1, 6):
            self.classes[i] += int(row[i] or 0)
        self.sum_ms += float(row[6] or 0.0)
        if hist is not None:
            merge_stored(self.hist, hist)

    def figures(self, filters: Filters, exact: list[float] | None) -> dict[str, Any]:
        """requests/errors/error_rate/avg/p50/p95/p99 under the status filter.

        Percentiles come from the merged sketch only when it counts exactly the requests
        selected: a period written by an earlier version (no status classes, no consumer
        sketches) leaves them unknown (None) rather than wrong.
        """
        c = self.classes
        n, errors, server = self.n, c[4] + c[5], c[5]
        if filters.status is not None:
            n = c[filters.status]
            errors = n if filters.status >= 4 else 0
            server = n if filters.status == 5 else 0
        out: dict[str, Any] = {
            "requests": n,
            "errors": errors,
            "server_errors": server,
            "error_rate": _pct(errors, n),
            "statuses": {f"{i}xx": c[i] for i in range(2, 6)},
        }
        if exact is not None:
            out["avg_ms"] = ms(sum(exact) / len(exact)) if exact else 0.0
            for p in (50, 95, 99):
                out[f"p{p}_ms"] = ms(_rank(exact, p)) or 0.0
            return out
        if not n:
            out.update(avg_ms=0.0, p50_ms=0.0, p95_ms=0.0, p99_ms=0.0)
            return out
        buckets = latencies(self.hist, filters.status)
        if buckets is not None and count(buckets) != n:
            buckets = None
        values = [None] * 3 if buckets is None else quantiles(buckets, n, (50, 95, 99))
        for p, value in zip((50, 95, 99), values, strict=True):
            out[f"p{p}_ms"] = ms(value)
        if filters.status is None:
            out["avg_ms"] = ms(self.sum_ms / n)
        else:  # the rollups sum latencies over all classes: the sketch's mean, within 1 %
            out["avg_ms"] = None if buckets is None else ms(mean(buckets))
        return out


def _exact_latencies(
    conn: sqlite3.Connection, q: Query, raw_since: float | None
) -> dict[tuple[str, str], list[float]] | None:
    """Sorted raw latencies per endpoint, when the range is small and still stored raw.

    Small means few raw rows in the whole range, whatever the filters: a filter narrows
    the answer, not the rows the event-time index makes the scan read.
    """
    if raw_since is not None and q.start < raw_since:
        return None
    where, params = pieces_sql(pieces(q.start, q.end))
    total = conn.execute(f"SELECT SUM(n) FROM rollup_endpoints WHERE {where}", params).fetchone()[0]
    if (total or 0) > EXACT_LIMIT:
        return None
    where, params = raw_where(q)
    out: dict[tuple[str, str], list[float]] = {}
    sql = f"SELECT method, path, status_code, response_time_ms FROM events WHERE {where}"
    for method, path, status, rt in conn.execute(sql, params):
        out.setdefault((method, route_of(path, status)), []).append(float(rt))
    for values in out.values():
        values.sort()
    return out


def _unmatched(conn: sqlite3.Connection, q: Query, method: str, status: int) -> dict[str, Any]:
    group = Filters(method, unmatched_label(status), None, q.filters.consumer)
    sub = Query(q.start, q.end, q.name, group)
    where, params = raw_where(sub)
    # One scan gives both the distinct count and the most requested paths.
    counted = conn.execute(
        f"SELECT path, COUNT(*) FROM events WHERE {where} GROUP BY path", params
    ).fetchall()
    counted.sort(key=lambda pc: (-pc[1], pc[0]))
    return {
        "status_code": status,
        "distinct_paths": len(counted),
        "paths": [{"path": p, "requests": int(c)} for p, c in counted[:UNMATCHED_PATHS]],
    }


def _groups(conn: sqlite3.Connection, q: Query) -> dict[tuple[str, str], _Counts]:
    """Per-endpoint counts and sketches over the range (a consumer's own, when chosen)."""
    groups: dict[tuple[str, str], _Counts] = {}
    if q.filters.consumer is None:
        where, params = rollup_where(q, consumers=False)
        sql = (
            "SELECT method, route, n, s1, s2, s3, s4, s5, sum_ms, hist "
            f"FROM rollup_endpoints WHERE {where}"
        )
        for row in conn.execute(sql, params):
            groups.setdefault((row[0], row[1]), _Counts()).add(row[2:9], row[9])
    else:
        where, params = rollup_where(q, consumers=True)
        sql = (
            f"SELECT method, route, {_COUNT_COLUMNS} FROM rollup_consumers WHERE {where} "
            "GROUP BY method, route"
        )
        for row in conn.execute(sql, params):
            groups.setdefault((row[0], row[1]), _Counts()).add(row[2:9])
        where, params = sketch_where(q)
        sql = f"SELECT method, route, hist FROM rollup_consumer_sketches WHERE {where}"
        for method, route, hist in conn.execute(sql, params):
            counts = groups.get((method, route))
            if counts is not None:
                merge_stored(counts.hist, hist)
    return groups


def _consumers(conn: sqlite3.Connection, q: Query) -> list[dict[str, Any]]:
    """consumer -> endpoint -> (requests, errors), anonymous traffic last."""
    where, params = rollup_where(q, consumers=True)
    status = q.filters.status
    count = "SUM(n)" if status is None else f"SUM(s{status})"
    errors = "SUM(s4 + s5)" if status is None else (f"SUM(s{status})" if status >= 4 else "0")
    sql = (
        f"SELECT consumer, method, route, {count}, {errors} FROM rollup_consumers "
        f"WHERE {where} GROUP BY consumer, method, route"
    )
    rows = [
        (None if c == ANONYMOUS else c, m, r, int(n or 0), int(e or 0))
        for c, m, r, n, e in conn.execute(sql, params)
    ]
    rows = [r for r in rows if r[3]]
    rows.sort(key=lambda r: (r[0] is None, r[0] or "", -r[3], r[1], r[2]))
    by_consumer: dict[str | None, dict[str, Any]] = {}
    for consumer, method, path, n, err in rows:
        entry = by_consumer.setdefault(
            consumer, {"consumer_id": consumer, "requests": 0, "errors": 0, "endpoints": []}
        )
        entry["requests"] += n
        entry["errors"] += err
        entry["endpoints"].append({"method": method, "path": path, "requests": n, "errors": err})
    return list(by_consumer.values())


def _latest(conn: sqlite3.Connection, q: Query, limit: int) -> list[dict[str, Any]]:
    where, params = raw_where(q)
    rows = conn.execute(
        "SELECT timestamp, method, path, status_code, response_time_ms, consumer_id, "
        f"request_size, response_size FROM events WHERE {where} "
        "ORDER BY julianday(timestamp) DESC, id DESC LIMIT ?",
        [*params, limit],
    ).fetchall()
    return [dict(zip(LATEST_KEYS, row, strict=True)) for row in rows]


LATEST_KEYS: Final = (
    "timestamp",
    "method",
    "path",
    "status_code",
    "response_time_ms",
    "consumer_id",
    "request_size",
    "response_size",
)


def _series(conn: sqlite3.Connection, q: Query, *, sketches: bool) -> list[dict[str, Any]]:
    """One point per step over the range: requests, status classes, avg (and percentiles)."""
    step = q.step()
    if q.all_time:
        row = conn.execute(
            "SELECT MIN(start), MAX(start) FROM rollup_endpoints WHERE res = ?", (step,)
        ).fetchone()
        if row[0] is None:
            return []
        first, stop = int(row[0]), int(row[1]) + step
    else:
        first, stop = q.start // step * step, q.end
    runs = [(step, first, stop)]
    by_start: dict[int, _Counts] = {}
    if q.filters.consumer is None:
        where, params = rollup_where(q, consumers=False, runs=runs)
        if sketches:
            sql = (
                "SELECT start, n, s1, s2, s3, s4, s5, sum_ms, hist "
                f"FROM rollup_endpoints WHERE {where}"
            )
            for row in conn.execute(sql, params):
                by_start.setdefault(int(row[0]), _Counts()).add(row[1:8], row[8])
        else:
            # Without sketches SQLite sums the endpoints of each period itself.
            sql = (
                f"SELECT start, {_COUNT_COLUMNS} FROM rollup_endpoints WHERE {where} GROUP BY start"
            )
            for row in conn.execute(sql, params):
                by_start.setdefault(int(row[0]), _Counts()).add(row[1:8])
    else:
        where, params = rollup_where(q, consumers=True, runs=runs)
        sql = f"SELECT start, {_COUNT_COLUMNS} FROM rollup_consumers WHERE {where} GROUP BY start"
        for row in conn.execute(sql, params):
            by_start.setdefault(int(row[0]), _Counts()).add(row[1:8])
        if sketches:
            where, params = sketch_where(q, runs)
            sql = f"SELECT start, hist FROM rollup_consumer_sketches WHERE {where}"
            for start, hist in conn.execute(sql, params):
                if int(start) in by_start:
                    merge_stored(by_start[int(start)].hist, hist)
    points = []
    for start in range(first, stop, step):
        counts = by_start.get(start) or _Counts()
        figures = counts.figures(q.filters, None)
        point = {"start": start, **figures}
        if not sketches:
            for p in (50, 95, 99):
                point.pop(f"p{p}_ms")
        points.append(point)
    return points


def _range(q: Query) -> dict[str, Any]:
    f = q.filters
    return {
        "name": q.name,
        "from": q.start,
        "to": q.end,
        "step": q.step(),
        "filters": {
            "method": f.method,
            "path": f.path,
            "status": None if f.status is None else f"{f.status}xx",
            "consumer": f.consumer,
        },
    }


def _endpoint_rows(
    conn: sqlite3.Connection, q: Query, raw_since: float | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    groups = _groups(conn, q)
    total = _Counts()
    for counts in groups.values():
        total.n += counts.n
        total.sum_ms += counts.sum_ms
        for i in range(6):
            total.classes[i] += counts.classes[i]
        merge_sketch(total.hist, counts.hist)
    exact = _exact_latencies(conn, q, raw_since)
    endpoints = []
    for (method, route), counts in groups.items():
        values = None if exact is None else exact.get((method, route), [])
        figures = counts.figures(q.filters, values)
        if not figures["requests"]:
            continue
        unmatched = None
        if route.startswith("unmatched (") and route[11:-1].isdigit():
            unmatched = _unmatched(conn, q, method, int(route[11:-1]))
        endpoints.append({"method": method, "path": route, "unmatched": unmatched, **figures})
    endpoints.sort(key=lambda e: (-e["requests"], e["method"], e["path"]))
    all_exact = None if exact is None else sorted(v for vs in exact.values() for v in vs)
    return endpoints, total.figures(q.filters, all_exact)


def summarize(
    conn: sqlite3.Connection,
    query: Query,
    *,
    latest: int,
    raw_since: float | None = None,
    now: float | None = None,
    ring: SecondRing | None = None,
) -> dict[str, Any]:
    """Every figure of one summary, read from ``conn`` (one read snapshot)."""
    clock = time.time() if now is None else now
    endpoints, totals = _endpoint_rows(conn, query, raw_since)
    consumers = _consumers(conn, query)
    totals["consumers"] = sum(c["consumer_id"] is not None for c in consumers)
    per_second = timeline(conn, query, int(clock), ring)
    return {
        "generated_at": clock,
        "range": _range(query),
        "totals": totals,
        "endpoints": endpoints,
        "consumers": consumers,
        "latest": _latest(conn, query, latest),
        "series": _series(conn, query, sketches=False),
        "timeline": per_second["points"],
        "timeline_end": per_second["end"],
        "timeline_live": per_second["live"],
    }


def endpoint_view(
    conn: sqlite3.Connection, query: Query, *, raw_since: float | None = None
) -> dict[str, Any]:
    """One endpoint (``method`` and ``path`` filters): totals, series with percentiles,
    status classes and its top consumers."""
    endpoints, totals = _endpoint_rows(conn, query, raw_since)
    consumers = _consumers(conn, query)
    top = sorted(consumers, key=lambda c: (-c["requests"], c["consumer_id"] is None))
    return {
        "range": _range(query),
        "totals": totals,
        "endpoints": endpoints,
        "series": _series(conn, query, sketches=True),
        "top_consumers": [
            {k: c[k] for k in ("consumer_id", "requests", "errors")} for c in top[:TOP_CONSUMERS]
        ],
    }


def consumer_view(
    conn: sqlite3.Connection, query: Query, *, raw_since: float | None = None
) -> dict[str, Any]:
    """One consumer (``consumer`` filter): endpoints, volume, errors over time, first and
    last seen (over all stored time)."""
    consumer = query.filters.consumer
    consumers = _consumers(conn, query)
    entry: dict[str, Any] = (
        consumers[0] if consumers else {"requests": 0, "errors": 0, "endpoints": []}
    )
    seen = []
    for order in ("MIN", "MAX"):
        # Narrowed day, hour, minute: each step reads only one period's rows.
        lo, hi = 0, 1 << 40
        for res in (86400, 3600, 60):
            row = conn.execute(
                f"SELECT {order}(start) FROM rollup_consumers "
                "WHERE res = ? AND consumer = ? AND start >= ? AND start < ?",
                (res, consumer, lo, hi),
            ).fetchone()
            if row[0] is None:
                break
            lo, hi = int(row[0]), int(row[0]) + res
        seen.append(None if row[0] is None else lo)
    return {
        "range": _range(query),
        "consumer_id": None if consumer == ANONYMOUS else consumer,
        "requests": entry["requests"],
        "errors": entry["errors"],
        "error_rate": _pct(entry["errors"], entry["requests"]),
        "endpoints": entry["endpoints"],
        "series": _series(conn, query, sketches=False),
        "first_seen": seen[0],
        "last_seen": None if seen[1] is None else seen[1] + 59,
    }
