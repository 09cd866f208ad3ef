"""Requests per second over one minute: the dashboard's live chart."""

from __future__ import annotations

import sqlite3
from typing import Any, Final

from peekapi_otel.server._query import Query
from peekapi_otel.server._rollup import SecondRing
from peekapi_otel.server._where import EXACT_LIMIT, julian, ms, raw_where, rollup_where

TIMELINE_SECONDS: Final = 60


def timeline(
    conn: sqlite3.Connection, q: Query, now: int, ring: SecondRing | None = None
) -> dict[str, Any]:
    """Requests per second over the last minute, or the minute up to the newest event.

    A live ingest shows the minute up to now. When the newest event is older than that
    (a replayed database, or nothing sent for a while), the chart shows the minute that
    ends with the newest event instead of an empty one.
    """
    where, params = raw_where(q)
    newest_row = conn.execute(
        "SELECT CAST(strftime('%s', timestamp) AS INTEGER) FROM events "
        f"WHERE {where} ORDER BY julianday(timestamp) DESC LIMIT 1",
        params,
    ).fetchone()
    end = min(now, q.end)
    live = True
    if newest_row is not None and newest_row[0] is not None and newest_row[0] < end - 60:
        end, live = int(newest_row[0]), False
    first = end - TIMELINE_SECONDS + 1
    window = Query(max(q.start, first - 1), min(q.end, end + 2), q.name, q.filters)
    where, params = raw_where(window)
    # julianday() is a float of days (about 40 microseconds of resolution today): select
    # a second more on each side and keep the exact seconds strftime() gives.
    params[0], params[1] = julian(first - 1), julian(end + 2)
    kept = None if ring is None or q.filters.any() else ring.window(first, end)
    if kept is not None:
        per_second = {
            sec: (n, ms(total / n) or 0.0)
            for sec, (n, total) in kept.items()
            if n and q.start <= sec < q.end
        }
        return timeline_points(first, end, live, per_second)
    minutes = conn.execute(
        "SELECT start, SUM(n), SUM(sum_ms) FROM rollup_endpoints "
        "WHERE res = 60 AND start >= ? AND start <= ? GROUP BY start",
        (first // 60 * 60, end // 60 * 60),
    ).fetchall()
    if sum(int(n) for _, n, _ in minutes) > EXACT_LIMIT:
        # Too many raw rows to count one by one (a burst, read back later): each second
        # gets its minute's average rate instead.
        runs = [(60, first // 60 * 60, end // 60 * 60 + 60)]
        table = "rollup_consumers" if q.filters.consumer is not None else "rollup_endpoints"
        where, params = rollup_where(q, consumers=q.filters.consumer is not None, runs=runs)
        count = "SUM(n)" if q.filters.status is None else f"SUM(s{q.filters.status})"
        spread = {
            int(start): (int(n or 0), float(total or 0.0))
            for start, n, total in conn.execute(
                f"SELECT start, {count}, SUM(sum_ms) FROM {table} WHERE {where} GROUP BY start",
                params,
            )
        }
        per_second = {}
        for sec in range(first, end + 1):
            n, total = spread.get(sec // 60 * 60, (0, 0.0))
            if n and q.start <= sec < q.end:
                per_second[sec] = (max(1, round(n / 60)), ms(total / n) or 0.0)
        return timeline_points(first, end, live, per_second)
    per_second = {
        int(sec): (int(n), ms(mean) or 0.0)
        for sec, n, mean in conn.execute(
            "SELECT CAST(strftime('%s', timestamp) AS INTEGER) AS second, COUNT(*), "
            f"AVG(response_time_ms) FROM events WHERE {where} GROUP BY second",
            params,
        )
        if sec is not None and first <= sec <= end and q.start <= sec < q.end
    }
    return timeline_points(first, end, live, per_second)


def timeline_points(
    first: int, end: int, live: bool, per_second: dict[int, tuple[int, float]]
) -> dict[str, Any]:
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
