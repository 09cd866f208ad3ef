"""The notification payload (the generic webhook body, version 1) and its text forms.

Every channel renders from this one dictionary, which is also what the notification log
stores: it holds no channel settings, so no secret.
"""

from __future__ import annotations

import datetime
import urllib.parse
from typing import Any, Final

from peekapi_otel.server.alerts._duration import format_duration
from peekapi_otel.server.alerts._measure import UNITS
from peekapi_otel.server.alerts._rules import Rule
from peekapi_otel.server.alerts._state import AlertState

PAYLOAD_VERSION: Final = "1"


def iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).isoformat(
        timespec="seconds"
    )


def dashboard_link(base: str, rule: Rule) -> str:
    """The dashboard view of what the rule watches: its filters and a range covering
    the window, in the query string."""
    query = {"range": _range_for(rule.window), **rule.selector.labels()}
    return f"{base}/?{urllib.parse.urlencode(query)}"


def _range_for(window: int) -> str:
    for seconds, name in ((900, "15m"), (3600, "1h"), (86400, "24h")):
        if window * 2 <= seconds:
            return name
    return "7d"


def build_payload(
    rule: Rule, state: AlertState, event: str, *, dashboard: str, now: float
) -> dict[str, Any]:
    """The body of a ``firing``, ``resolved`` or ``test`` notification."""
    labels = {"alertname": rule.name, "kind": rule.kind, **rule.selector.labels(), **rule.labels}
    return {
        "version": PAYLOAD_VERSION,
        "rule": rule.name,
        "kind": rule.kind,
        "state": event,
        "value": state.value,
        "threshold": rule.threshold,
        "unit": UNITS[rule.kind],
        "window": format_duration(rule.window),
        "windowSeconds": rule.window,
        "labels": labels,
        "description": rule.description,
        "startsAt": iso(state.active_since if state.active_since is not None else now),
        "endsAt": iso(state.resolved_at) if event == "resolved" else None,
        "sentAt": iso(now),
        "url": dashboard_link(dashboard, rule),
        "summary": summary(rule, state.value, event),
    }


def _quantity(kind: str, stat: str) -> str:
    return {
        "error_rate": "error rate",
        "latency": f"{stat} latency",
        "volume": "volume change",
        "inactivity": "time since the last request",
    }[kind]


def summary(rule: Rule, value: float | None, event: str) -> str:
    """One line: ``[FIRING] checkout-5xx: error rate 12.5% > 5% over 5m (POST /checkout)``."""
    unit = UNITS[rule.kind]
    shown = "no data" if value is None else f"{value:g}{unit}"
    what = _quantity(rule.kind, rule.stat)
    if rule.kind == "inactivity":
        condition = f"no requests for {format_duration(rule.window)} ({what}: {shown})"
    else:
        sign = "<" if rule.kind == "volume" and rule.direction == "drop" else ">"
        limit = rule.threshold if sign == ">" else -(rule.threshold or 0.0)
        condition = f"{what} {shown} {sign} {limit:g}{unit} over {format_duration(rule.window)}"
    scope = ", ".join(f"{k}={v}" for k, v in rule.selector.labels().items())
    return f"[{event.upper()}] {rule.name}: {condition}" + (f" ({scope})" if scope else "")


def text(payload: dict[str, Any]) -> str:
    """The plain-text body shared by Slack, Telegram and email."""
    lines = [payload["summary"]]
    if payload.get("description"):
        lines.append(str(payload["description"]))
    lines.append(f"since {payload['startsAt']}")
    if payload.get("endsAt"):
        lines.append(f"resolved at {payload['endsAt']}")
    lines.append(str(payload["url"]))
    return "\n".join(lines)
