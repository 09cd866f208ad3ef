"""One rule, one moment: the measured value and whether the rule's condition holds."""

from __future__ import annotations

from dataclasses import dataclass

from peekapi_otel.server.alerts._metrics import MetricSource
from peekapi_otel.server.alerts._rules import STATUS_CLASSES, Rule

UNITS = {"error_rate": "%", "latency": "ms", "volume": "%", "inactivity": "s"}


@dataclass(frozen=True)
class Measurement:
    active: bool
    value: float | None  # None: not enough data to say (the condition then does not hold)
    requests: int


def measure(
    rule: Rule, metrics: MetricSource, now: float, *, watched_since: float | None = None
) -> Measurement:
    """Evaluate ``rule`` over the window ending at ``now`` (whole seconds).

    ``watched_since`` is when the rule was first evaluated: an inactivity rule holds
    when nothing matched in its window and it has been watching for a whole window, so
    a new rule or a new database does not raise it before anyone could have called.
    """
    end = float(int(now))
    start = end - rule.window
    threshold = rule.threshold or 0.0
    if rule.kind == "error_rate":
        counts = metrics.counts(rule.selector, start, end, STATUS_CLASSES[rule.statuses])
        if counts.requests < rule.min_requests:
            return Measurement(False, None, counts.requests)
        rate = 100.0 * counts.matching / counts.requests
        return Measurement(rate > threshold, round(rate, 2), counts.requests)
    if rule.kind == "latency":
        latency = metrics.latency(rule.selector, start, end, rule.stat)
        if latency.requests < rule.min_requests or latency.value_ms is None:
            return Measurement(False, None, latency.requests)
        value = round(latency.value_ms, 2)
        return Measurement(value > threshold, value, latency.requests)
    if rule.kind == "volume":
        # Compared with the window just before: a spike is "threshold % more", a drop
        # "threshold % fewer". Without a baseline of min_requests there is no verdict.
        everything = (0, 999)
        current = metrics.counts(rule.selector, start, end, everything).requests
        previous = metrics.counts(rule.selector, start - rule.window, start, everything).requests
        if previous < rule.min_requests:
            return Measurement(False, None, current)
        change = round(100.0 * (current - previous) / previous, 2)
        active = change > threshold if rule.direction == "spike" else -change > threshold
        return Measurement(active, change, current)
    # inactivity: nothing matched within the window. The value is the time since the
    # latest matching request when there is one in the window.
    seen = metrics.last_seen(rule.selector, start, end)
    if seen is None:
        watched = end - (end if watched_since is None else watched_since)
        return Measurement(watched >= rule.window, None, 0)
    return Measurement(False, round(max(0.0, end - seen), 1), 0)
