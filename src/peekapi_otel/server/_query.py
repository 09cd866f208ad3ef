"""What a dashboard view or report asks for: a time range and filters, from a query string.

``range`` is ``15m``, ``1h``, ``24h`` or ``7d`` (up to now), or ``from``/``to`` give the
bounds as ISO 8601 or Unix seconds; without either, all stored time. Filters: ``method``,
``path`` (an endpoint as the dashboard lists it, ``unmatched (404)`` included),
``status`` (a class: ``2xx`` … ``5xx``) and ``consumer`` (``(anonymous)`` for requests
without one). Bounds are whole minutes (the rollups' finest period), whole hours for a
range over 3 hours: ``from`` is rounded down and ``to`` up.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

RANGES: Final = {"15m": 900, "1h": 3600, "24h": 86400, "7d": 7 * 86400}
ANONYMOUS_NAME: Final = "(anonymous)"
_FUTURE_SLACK: Final = 86400  # all-time ranges include events a skewed clock dated ahead


class BadQuery(ValueError):
    """A query parameter that cannot be read; the message says which and why."""


@dataclass(frozen=True)
class Filters:
    method: str | None = None
    path: str | None = None
    status: int | None = None  # the class digit, 2..5
    consumer: str | None = None  # "" for anonymous

    def any(self) -> bool:
        return any(v is not None for v in (self.method, self.path, self.status, self.consumer))


@dataclass(frozen=True)
class Query:
    start: int  # Unix seconds, whole minutes, inclusive
    end: int  # exclusive
    name: str  # "15m", "1h", ..., "custom" or "all"
    filters: Filters = field(default_factory=Filters)
    now: float = 0.0

    @property
    def all_time(self) -> bool:
        return self.name == "all"

    def step(self) -> int:
        """The period of one point in a series over this range."""
        span = self.end - self.start
        if span <= 3 * 3600:
            return 60
        if span <= 8 * 86400:
            return 3600
        return 86400


def _moment(text: str, name: str) -> float:
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise BadQuery(
            f"{name}={text[:40]!r} is neither ISO 8601 (2026-12-03T08:00:00Z) nor Unix seconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


def _status(text: str) -> int:
    value = text.strip().lower()
    if len(value) == 3 and value[0] in "2345" and value[1:] == "xx":
        return int(value[0])
    raise BadQuery(f"status={text[:20]!r}: expected a class, 2xx, 3xx, 4xx or 5xx")


def parse_query(params: Mapping[str, str], *, now: float | None = None) -> Query:
    """A :class:`Query` from query-string parameters (first value of each)."""
    clock = time.time() if now is None else now
    name = params.get("range", "").strip()
    if name and ("from" in params or "to" in params):
        raise BadQuery("give either range or from/to, not both")
    if name:
        if name not in RANGES:
            raise BadQuery(f"range={name[:20]!r}: expected one of {', '.join(RANGES)}")
        start, end = clock - RANGES[name], clock
    elif "from" in params or "to" in params:
        name = "custom"
        start = _moment(params["from"], "from") if "from" in params else 0.0
        end = _moment(params["to"], "to") if "to" in params else clock
        if end <= start:
            raise BadQuery("to must be later than from")
    else:
        name, start, end = "all", 0.0, clock + _FUTURE_SLACK
    consumer = params.get("consumer")
    if consumer == ANONYMOUS_NAME:
        consumer = ""
    status = params.get("status")
    filters = Filters(
        method=params.get("method") or None,
        path=params.get("path") or None,
        status=None if not status else _status(status),
        consumer=consumer,
    )
    # Ranges over 3 h are read in whole hours (the hourly rollups), shorter ones in
    # whole minutes; all stored time in minutes, like a short range's edges.
    unit = 3600 if name != "all" and end - start > 3 * 3600 else 60
    return Query(
        start=max(0, math.floor(start / unit) * unit),
        end=math.ceil(end / unit) * unit,
        name=name,
        filters=filters,
        now=clock,
    )


def from_query_string(query: str, *, now: float | None = None) -> Query:
    from urllib.parse import parse_qs

    parsed = parse_qs(query, keep_blank_values=False)
    return parse_query({k: v[0] for k, v in parsed.items()}, now=now)
