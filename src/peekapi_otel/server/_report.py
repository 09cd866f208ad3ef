"""``peekapi-otel report``: the dashboard's tables, printed from the SQLite file or from a
PostgreSQL database (``--db postgresql://...``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TextIO, cast

from peekapi_otel.server._query import Query
from peekapi_otel.server._store import EventStore
from peekapi_otel.server._text import printable

ANONYMOUS = "(anonymous)"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: set[int]) -> str:
    """Aligned plain-text columns; the columns in ``numeric`` are right-aligned.

    Cells come from anonymous requests (paths, consumer IDs): control characters are
    printed escaped, never sent to the terminal as they are.
    """
    cells = [
        [printable(str(h)) for h in headers],
        *[[printable(str(c)) for c in row] for row in rows],
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value: float) -> str:
    return f"{value:.1f}%"


def _unmatched(endpoints: Sequence[dict[str, Any]]) -> list[str]:
    """The raw paths behind each ``unmatched (404)`` row, most requested first."""
    rows = []
    for e in endpoints:
        group = e.get("unmatched")
        if not group:
            continue
        rows += [
            [e["method"], group["status_code"], p["path"], p["requests"]] for p in group["paths"]
        ]
        more = group["distinct_paths"] - len(group["paths"])
        if more > 0:
            rows.append([e["method"], group["status_code"], f"(and {more} more paths)", ""])
    if not rows:
        return []
    return [
        "",
        "Unmatched paths (requests no route answered, grouped above)",
        table(["Method", "Status", "Path", "Requests"], rows, numeric={1, 3}),
    ]


def _iso(second: int) -> str:
    import datetime

    moment = datetime.datetime.fromtimestamp(second, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _heading(summary: dict[str, Any]) -> str:
    """One line naming the range and filters, when the report is not of all stored time."""
    r = summary.get("range")
    if not r or (r["name"] == "all" and not any(r["filters"].values())):
        return ""
    span = "all stored time" if r["name"] == "all" else f"{_iso(r['from'])} to {_iso(r['to'])}"
    if r["name"] not in ("all", "custom"):
        span = f"last {r['name']} ({span})"
    filters = " ".join(f"{k}={v}" for k, v in r["filters"].items() if v is not None)
    return f"Range: {span}" + (f"; {filters}" if filters else "") + "\n\n"


def render(summary: dict[str, Any], *, latest: int) -> str:
    """The report text for a :meth:`EventStore.summary` result."""
    t = summary["totals"]
    out = [
        "Totals",
        table(
            ["Requests", "Errors", "5xx", "Error rate", "Avg ms", "p95 ms", "Consumers"],
            [
                [
                    t["requests"],
                    t["errors"],
                    t["server_errors"],
                    _pct(t["error_rate"]),
                    _ms(t["avg_ms"]),
                    _ms(t["p95_ms"]),
                    t["consumers"],
                ]
            ],
            numeric={0, 1, 2, 3, 4, 5, 6},
        ),
        "",
        "Endpoints",
        table(
            ["Method", "Path", "Requests", "Errors", "5xx", "Error rate", "Avg ms", "p95 ms"],
            [
                [
                    e["method"],
                    e["path"],
                    e["requests"],
                    e["errors"],
                    e["server_errors"],
                    _pct(e["error_rate"]),
                    _ms(e["avg_ms"]),
                    _ms(e["p95_ms"]),
                ]
                for e in summary["endpoints"]
            ],
            numeric={2, 3, 4, 5, 6, 7},
        ),
        *_unmatched(summary["endpoints"]),
        "",
        "Consumers",
        table(
            ["Consumer", "Method", "Path", "Requests", "Errors"],
            [
                [
                    ANONYMOUS if c["consumer_id"] is None else c["consumer_id"],
                    e["method"],
                    e["path"],
                    e["requests"],
                    e["errors"],
                ]
                for c in summary["consumers"]
                for e in c["endpoints"]
            ],
            numeric={3, 4},
        ),
    ]
    if latest > 0:
        out += [
            "",
            f"Latest {min(latest, len(summary['latest']))} requests",
            table(
                ["Time", "Method", "Path", "Status", "ms", "Consumer"],
                [
                    [
                        e["timestamp"],
                        e["method"],
                        e["path"],
                        e["status_code"],
                        _ms(e["response_time_ms"]),
                        ANONYMOUS if e["consumer_id"] is None else e["consumer_id"],
                    ]
                    for e in summary["latest"][:latest]
                ],
                numeric={3, 4},
            ),
        ]
    return "\n".join(out) + "\n"


def _open(db: str) -> EventStore:
    if db.startswith(("postgresql://", "postgres://")):
        from peekapi_otel.server.db._pg_store import PgEventStore

        return cast("EventStore", PgEventStore(db, create=False))
    return EventStore(db, create=False)


def report(db: str, out: TextIO, *, latest: int = 20, query: Query | None = None) -> None:
    """Print the report for ``db`` (a SQLite file or a PostgreSQL URL); raises
    :class:`peekapi_otel.server._store.StoreMissing`, and on PostgreSQL
    ``StoreUnavailable`` (``server.db._backend``) when it cannot be reached."""
    store = _open(db)
    try:
        summary = store.summary(query, latest=latest)
        out.write(_heading(summary) + render(summary, latest=latest))
    finally:
        store.close()
