"""The SQL conditions that select a query's range and filters, in the raw events and in
the rollups, shared by the summary, the views and the timeline."""

from __future__ import annotations

from typing import Any, Final

from peekapi_otel.server._query import Query
from peekapi_otel.server._rollup import (
    ANONYMOUS,
    CONSUMER_LEVELS,
    RESOLUTIONS,
    UNMATCHED_SQL,
    pieces,
    pieces_sql,
)

_UNIX_EPOCH_JULIAN: Final = 2440587.5
EXACT_LIMIT: Final = 5_000
"""Up to this many requests in a range (and all of them still stored raw), latency
figures are computed exactly from the raw events; above it they come from the rollups'
sketches (within 1 %)."""


def ms(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None


def julian(unix_seconds: float) -> float:
    return unix_seconds / 86400.0 + _UNIX_EPOCH_JULIAN


def rollup_where(
    q: Query, *, consumers: bool, runs: list[tuple[int, int, int]] | None = None
) -> tuple[str, list[Any]]:
    if runs is None:
        runs = pieces(q.start, q.end, CONSUMER_LEVELS if consumers else RESOLUTIONS)
    where, params = pieces_sql(runs)
    f = q.filters
    clauses = [where]
    if f.method is not None:
        clauses.append("method = ?")
        params.append(f.method)
    if f.path is not None:
        clauses.append("route = ?")
        params.append(f.path)
    if consumers and f.consumer is not None:
        clauses.append("consumer = ?")
        params.append(f.consumer)
    return " AND ".join(clauses), params


def sketch_where(q: Query, runs: list[tuple[int, int, int]] | None = None) -> tuple[str, list[Any]]:
    """The conditions on ``rollup_consumer_sketches`` for a query with a consumer filter,
    the consumer repeated in each period's run so each is one range of the key."""
    chosen = pieces(q.start, q.end, CONSUMER_LEVELS) if runs is None else runs
    if not chosen:
        return "0", []
    term = "(consumer = ? AND res = ? AND start >= ? AND start < ?)"
    clauses = [f"({' OR '.join(term for _ in chosen)})"]
    params: list[Any] = [v for run in chosen for v in (q.filters.consumer, *run)]
    if q.filters.method is not None:
        clauses.append("method = ?")
        params.append(q.filters.method)
    if q.filters.path is not None:
        clauses.append("route = ?")
        params.append(q.filters.path)
    return " AND ".join(clauses), params


def raw_where(q: Query, *, status: bool = True) -> tuple[str, list[Any]]:
    clauses = ["julianday(timestamp) >= ?", "julianday(timestamp) < ?"]
    params: list[Any] = [julian(q.start), julian(q.end)]
    f = q.filters
    if f.method is not None:
        clauses.append("method = ?")
        params.append(f.method)
    if f.path is not None:
        if f.path.startswith("unmatched (") and f.path[11:-1].isdigit():
            clauses.append(f"{UNMATCHED_SQL} AND status_code = ?")
            params.append(int(f.path[11:-1]))
        else:
            clauses.append(f"path = ? AND NOT {UNMATCHED_SQL}")
            params.append(f.path)
    if f.consumer is not None:
        if f.consumer == ANONYMOUS:
            clauses.append("(consumer_id IS NULL OR consumer_id = '')")
        else:
            clauses.append("consumer_id = ?")
            params.append(f.consumer)
    if status and f.status is not None:
        if f.status == 5:
            clauses.append("status_code >= 500")
        else:
            clauses.append("status_code BETWEEN ? AND ?")
            params += [f.status * 100, f.status * 100 + 99]
    return " AND ".join(clauses), params
