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
from typing import Any, Final

TIMELINE_SECONDS: Final = 60
UNMATCHED_PATHS: Final = 20
"""Raw paths listed per unmatched group, most requested first."""

_UNIX_EPOCH_JULIAN: Final = 2440587.5
UNMATCHED_SQL: Final = (
    "(status_code IN (404, 405) AND instr(path, '{') = 0 AND instr(path, '<') = 0 "
    "AND instr(path, '/:') = 0)"
)
# Routes and unmatched groups are two queries: each is a scan of one covering index
# (``events_endpoint``, and the partial ``events_unmatched``), where one GROUP BY over a
# CASE expression would read and sort every row.
_ROUTES: Final = f"""
SELECT method, path, COUNT(*), SUM(status_code >= 400), SUM(status_code >= 500),
       AVG(response_time_ms)
FROM events WHERE NOT {UNMATCHED_SQL}
GROUP BY method, path
"""

_UNMATCHED_GROUPS: Final = f"""
SELECT method, status_code, COUNT(*), SUM(status_code >= 400), SUM(status_code >= 500),
       AVG(response_time_ms)
FROM events WHERE {UNMATCHED_SQL}
GROUP BY method, status_code
"""

_ROUTE_RANK: Final = f"""
SELECT response_time_ms FROM events WHERE method = ? AND path = ? AND NOT {UNMATCHED_SQL}
ORDER BY response_time_ms LIMIT 1 OFFSET ?
"""

_UNMATCHED_RANK: Final = f"""
SELECT response_time_ms FROM events WHERE method = ? AND status_code = ? AND {UNMATCHED_SQL}
ORDER BY response_time_ms LIMIT 1 OFFSET ?
"""

_UNMATCHED_PATHS: Final = f"""
SELECT path, COUNT(*) FROM events WHERE method = ? AND status_code = ? AND {UNMATCHED_SQL}
GROUP BY path ORDER BY COUNT(*) DESC, path LIMIT ?
"""

_UNMATCHED_DISTINCT: Final = f"""
SELECT COUNT(DISTINCT path) FROM events WHERE method = ? AND status_code = ? AND {UNMATCHED_SQL}
"""

_TOTALS: Final = """
SELECT COUNT(*), SUM(status_code >= 400), SUM(status_code >= 500), AVG(response_time_ms),
       COUNT(DISTINCT consumer_id)
FROM events
"""

_TOTAL_RANK: Final = (
    "SELECT response_time_ms FROM events ORDER BY response_time_ms LIMIT 1 OFFSET ?"
)

_CONSUMER_ROUTES: Final = f"""
SELECT consumer_id, method, path, COUNT(*), SUM(status_code >= 400)
FROM events WHERE NOT {UNMATCHED_SQL}
GROUP BY consumer_id, method, path
"""

_CONSUMER_UNMATCHED: Final = f"""
SELECT consumer_id, method, status_code, COUNT(*), SUM(status_code >= 400)
FROM events WHERE {UNMATCHED_SQL}
GROUP BY consumer_id, method, status_code
"""

# Newest request first by the event's own time (the events_time index); events whose
# timestamp cannot be read are NULL there, which sorts last.
_LATEST: Final = """
SELECT timestamp, method, path, status_code, response_time_ms, consumer_id,
       request_size, response_size
FROM events ORDER BY julianday(timestamp) DESC, id DESC LIMIT ?
"""

_LATEST_KEYS: Final = (
    "timestamp",
    "method",
    "path",
    "status_code",
    "response_time_ms",
    "consumer_id",
    "request_size",
    "response_size",
)

_NEWEST: Final = """
SELECT CAST(strftime('%s', timestamp) AS INTEGER) FROM events
WHERE julianday(timestamp) IS NOT NULL ORDER BY julianday(timestamp) DESC LIMIT 1
"""

_TIMELINE: Final = """
SELECT CAST(strftime('%s', timestamp) AS INTEGER) AS second, COUNT(*), AVG(response_time_ms)
FROM events WHERE julianday(timestamp) >= ? AND julianday(timestamp) < ?
GROUP BY second ORDER BY second
"""


def p95_offset(n: int) -> int:
    """0-based index of the nearest-rank 95th percentile among ``n`` sorted values.

    The rank is ceil(0.95 * n), computed in integers so float rounding cannot move it.
    """
    return max(0, (95 * n + 99) // 100 - 1)


def unmatched_label(status: int) -> str:
    return f"unmatched ({status})"


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def _ms(value: float | None) -> float:
    return round(value, 2) if value is not None else 0.0


def _julian(unix_seconds: float) -> float:
    return unix_seconds / 86400.0 + _UNIX_EPOCH_JULIAN


def _figures(
    base: dict[str, Any],
    n: int,
    errors: int | None,
    server_errors: int | None,
    avg: float | None,
    p95: float | None,
) -> dict[str, Any]:
    # SUM() over no rows is NULL, hence the "or 0".
    return {
        **base,
        "requests": n,
        "errors": int(errors or 0),
        "server_errors": int(server_errors or 0),
        "error_rate": _pct(int(errors or 0), n),
        "avg_ms": _ms(avg),
        "p95_ms": _ms(p95),
    }


def _endpoints(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    out = []
    for method, path, n, err, err5, mean in conn.execute(_ROUTES).fetchall():
        p95 = conn.execute(_ROUTE_RANK, (method, path, p95_offset(n))).fetchone()[0]
        base = {"method": method, "path": path, "unmatched": None}
        out.append(_figures(base, n, err, err5, mean, p95))
    for method, status, n, err, err5, mean in conn.execute(_UNMATCHED_GROUPS).fetchall():
        p95 = conn.execute(_UNMATCHED_RANK, (method, status, p95_offset(n))).fetchone()[0]
        paths = conn.execute(_UNMATCHED_PATHS, (method, status, UNMATCHED_PATHS)).fetchall()
        distinct = conn.execute(_UNMATCHED_DISTINCT, (method, status)).fetchone()[0]
        unmatched = {
            "status_code": status,
            "distinct_paths": int(distinct),
            "paths": [{"path": p, "requests": int(c)} for p, c in paths],
        }
        base = {"method": method, "path": unmatched_label(status), "unmatched": unmatched}
        out.append(_figures(base, n, err, err5, mean, p95))
    out.sort(key=lambda e: (-e["requests"], e["method"], e["path"]))
    return out


def _consumers(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """consumer -> endpoint -> (requests, errors), anonymous traffic last."""
    rows = [
        (consumer, method, path, int(n), int(err or 0))
        for consumer, method, path, n, err in conn.execute(_CONSUMER_ROUTES).fetchall()
    ]
    rows += [
        (consumer, method, unmatched_label(status), int(n), int(err or 0))
        for consumer, method, status, n, err in conn.execute(_CONSUMER_UNMATCHED).fetchall()
    ]
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


def _timeline(conn: sqlite3.Connection, now: int) -> dict[str, Any]:
    """Requests per second over the last minute, or the newest minute stored.

    A live ingest shows the minute up to now. When the newest event is older than that
    (a replayed database, or nothing sent for a while), the chart shows the minute that
    ends with the newest event instead of an empty one.
    """
    newest_row = conn.execute(_NEWEST).fetchone()
    end = now
    live = True
    if (
        newest_row is not None
        and newest_row[0] is not None
        and newest_row[0] < now - TIMELINE_SECONDS
    ):
        end, live = int(newest_row[0]), False
    first = end - TIMELINE_SECONDS + 1
    # julianday() is a float of days (about 40 microseconds of resolution today): select
    # a second more on each side and keep the exact seconds strftime() gives.
    bounds = (_julian(first - 1), _julian(end + 2))
    per_second = {
        int(sec): (int(n), _ms(mean))
        for sec, n, mean in conn.execute(_TIMELINE, bounds).fetchall()
        if sec is not None and first <= sec <= end
    }
    return {
        "end": end,
        "live": live,
        "points": [
            {
                "second": sec,
                "requests": per_second.get(sec, (0, 0.0))[0],
                "avg_ms": per_second.get(sec, (0, 0.0))[1],
            }
            for sec in range(first, end + 1)
        ],
    }


def summarize(conn: sqlite3.Connection, *, latest: int, now: float | None = None) -> dict[str, Any]:
    """Every figure of one summary, read from ``conn`` (one read snapshot)."""
    clock = time.time() if now is None else now
    total, errors, server_errors, avg, consumers = conn.execute(_TOTALS).fetchone()
    p95 = conn.execute(_TOTAL_RANK, (p95_offset(total),)).fetchone()
    timeline = _timeline(conn, int(clock))
    return {
        "generated_at": clock,
        "totals": _figures(
            {"consumers": int(consumers)},
            total,
            errors,
            server_errors,
            avg,
            None if p95 is None else p95[0],
        ),
        "endpoints": _endpoints(conn),
        "consumers": _consumers(conn),
        "latest": [
            dict(zip(_LATEST_KEYS, row, strict=True))
            for row in conn.execute(_LATEST, (latest,)).fetchall()
        ],
        "timeline": timeline["points"],
        "timeline_end": timeline["end"],
        "timeline_live": timeline["live"],
    }
