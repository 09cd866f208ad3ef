"""The alert state machine, as Prometheus and Alertmanager define it.

inactive -> pending when the condition starts to hold; pending -> firing once it has held
for ``for`` (at once when ``for`` is 0); pending -> inactive as soon as it stops holding.
A firing alert that stops holding stays firing for ``keep_firing_for`` (against
flapping), then resolves. While firing, the notification is repeated every
``repeat_interval``. Pure functions over frozen values: the engine persists the result.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from peekapi_otel.server.alerts._rules import Rule

State = Literal["inactive", "pending", "firing"]
Event = Literal["firing", "resolved"]


@dataclass(frozen=True)
class AlertState:
    state: State = "inactive"
    active_since: float | None = None  # when the condition began to hold (startsAt)
    fired_at: float | None = None
    last_active: float | None = None  # the latest evaluation at which it held
    last_sent: float | None = None  # the latest firing notification
    resolved_at: float | None = None  # endsAt of the latest resolved episode
    value: float | None = None
    evaluated_at: float | None = None
    watched_since: float | None = None  # the first evaluation of this rule, ever
    keep_firing_since: float | None = None  # firing, but no longer holding, since


def step(
    previous: AlertState, rule: Rule, *, active: bool, value: float | None, now: float
) -> tuple[AlertState, Event | None]:
    """The state after one evaluation, and the notification it calls for, if any."""
    seen = dataclasses.replace(
        previous, value=value, evaluated_at=now, watched_since=previous.watched_since or now
    )
    if active:
        seen = dataclasses.replace(seen, last_active=now, keep_firing_since=None)
    if previous.state == "firing":
        if not active and seen.keep_firing_since is None:
            seen = dataclasses.replace(seen, keep_firing_since=now)
        # As Prometheus counts it: from the first evaluation at which it stopped holding.
        kept = not active and now - (seen.keep_firing_since or now) < rule.keep_firing_for
        if active or kept:
            due = rule.repeat_interval > 0 and (
                previous.last_sent is None or now - previous.last_sent >= rule.repeat_interval
            )
            if due:
                return dataclasses.replace(seen, last_sent=now), "firing"
            return seen, None
        return (
            dataclasses.replace(seen, state="inactive", resolved_at=now, keep_firing_since=None),
            "resolved",
        )
    if not active:
        return dataclasses.replace(seen, state="inactive", active_since=None), None
    since = now
    if previous.state == "pending" and previous.active_since is not None:
        since = previous.active_since
    if now - since >= rule.for_:
        fired = dataclasses.replace(
            seen,
            state="firing",
            active_since=since,
            fired_at=now,
            last_sent=now,
            resolved_at=None,
        )
        return fired, "firing"
    return dataclasses.replace(seen, state="pending", active_since=since), None
