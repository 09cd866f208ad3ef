"""The alert engine of ``serve``: evaluates every rule each interval on a background
thread, persists the states, and queues the notifications the dispatcher delivers.

The clock is injected: tests step it and call :meth:`AlertEngine.evaluate` directly.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from peekapi_otel.server.alerts._channels import Sender, build_sender
from peekapi_otel.server.alerts._dispatch import Backoff, Dispatcher
from peekapi_otel.server.alerts._duration import format_duration
from peekapi_otel.server.alerts._measure import UNITS, measure
from peekapi_otel.server.alerts._metrics import MetricSource, SqliteMetrics
from peekapi_otel.server.alerts._payload import build_payload, dashboard_link, iso
from peekapi_otel.server.alerts._rules import AlertsConfig, Rule
from peekapi_otel.server.alerts._state import AlertState, step
from peekapi_otel.server.alerts._statedb import AlertDatabase

_logger = logging.getLogger(__name__)


class AlertEngine:
    """Args:
    config: the checked alerts file.
    db_path: the serve database (events, and the alert tables created here).
    dashboard: base URL of the dashboard, for the links in notifications; the file's
        ``dashboard_url`` wins over it.
    clock: Unix seconds; ``time.time`` in serve.
    metrics, senders, backoff: replaceable layers (another store, test channels).
    leader: asked before each background round; a round runs only when it answers true
        (one evaluator among several serve processes), and the states are read again
        from the database when it starts answering true. None: always.
    database: the alert tables (another database than the SQLite file at db_path).
    """

    def __init__(
        self,
        config: AlertsConfig,
        db_path: str | Path,
        *,
        dashboard: str,
        clock: Callable[[], float] = time.time,
        metrics: MetricSource | None = None,
        senders: Mapping[str, Sender] | None = None,
        backoff: Backoff | None = None,
        leader: Callable[[], bool] | None = None,
        database: AlertDatabase | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.leader = leader
        self.dashboard = config.dashboard_url or dashboard.rstrip("/")
        self.db = AlertDatabase(db_path) if database is None else database
        if metrics is None:
            sqlite_metrics = SqliteMetrics(db_path)
            sqlite_metrics.create_indexes(self.db.connection)
            metrics = sqlite_metrics
        self.metrics = metrics
        if senders is None:
            senders = {name: build_sender(ch) for name, ch in config.channels.items()}
        self.dispatcher = Dispatcher(self.db, senders, clock=clock, backoff=backoff)
        self._states = self._stored_states()
        self._leading = False
        self._reload_failing = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.evaluations = 0
        self.evaluation_errors = 0
        self._failing: set[str] = set()

    def evaluate(self) -> list[tuple[str, str]]:
        """One round over every rule; returns the ``(rule, event)`` notifications queued."""
        queued: list[tuple[str, str]] = []
        for rule in self.config.rules:
            try:
                event = self._evaluate_rule(rule)
            except Exception:
                # One bad query (a locked or damaged file) must not stop the other rules;
                # logged once per failing spell of a rule, not every interval.
                self.evaluation_errors += 1
                if rule.name not in self._failing:
                    self._failing.add(rule.name)
                    _logger.exception("alert rule %r could not be evaluated", rule.name)
                continue
            self._failing.discard(rule.name)
            if event is not None:
                queued.append((rule.name, event))
        self.evaluations += 1
        if queued:
            self.dispatcher.wake()
        return queued

    def _evaluate_rule(self, rule: Rule) -> str | None:
        now = self.clock()
        with self._lock:
            previous = self._states[rule.name]
        result = measure(rule, self.metrics, now, watched_since=previous.watched_since)
        state, event = step(previous, rule, active=result.active, value=result.value, now=now)
        notifications = []
        if event is not None:
            payload = build_payload(rule, state, event, dashboard=self.dashboard, now=now)
            notifications = [(channel, event, payload) for channel in rule.channels]
        # Saved every round, not only on a change of state: keep_firing_for and the
        # repeat interval count from these times after a restart.
        self.db.save(rule.name, state, notifications, now)
        with self._lock:
            self._states[rule.name] = state
        return event

    def _stored_states(self) -> dict[str, AlertState]:
        known = self.db.states()
        return {rule.name: known.get(rule.name, AlertState()) for rule in self.config.rules}

    def snapshot(self) -> dict[str, Any]:
        """What ``GET /api/alerts`` returns."""
        with self._lock:
            states = dict(self._states)
        try:
            totals = self.db.channel_totals()
            log = self.db.log(20)
        except sqlite3.Error:  # locked for longer than the busy timeout: show the states
            totals, log = {}, []
        rules = [_rule_view(rule, states[rule.name], self.dashboard) for rule in self.config.rules]
        channels = []
        for name, channel in self.config.channels.items():
            counts = self.dispatcher.counts.get(name)
            stored = totals.get(name, {"sent": 0, "pending": 0, "failed": 0, "attempts": 0})
            channels.append(
                {
                    "name": name,
                    "type": channel.type,
                    **stored,
                    "failed_attempts_since_start": 0 if counts is None else counts.failed_attempts,
                }
            )
        return {
            "enabled": True,
            "interval": self.config.interval,
            "evaluations": self.evaluations,
            "evaluation_errors": self.evaluation_errors,
            "rules": rules,
            "channels": channels,
            "notifications": log,
        }

    def start(self) -> None:
        self.dispatcher.start()
        self._thread = threading.Thread(
            target=self._run, name="peekapi-alerts-evaluate", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            leading = self.leader is None or self.leader()
            if self.leader is not None and not (leading and self._leading):
                # Another process evaluates, or did until now: show, and continue from,
                # what it stored.
                reloaded = self._reload_states()
                leading = leading and reloaded
            self._leading = leading
            if leading:
                self.evaluate()
            self._stop.wait(self.config.interval)

    def _reload_states(self) -> bool:
        try:
            states = self._stored_states()
        except Exception:
            # A standby keeps asking every interval; logged once per failing spell.
            if not self._reload_failing:
                _logger.exception("the stored alert states could not be read")
            self._reload_failing = True
            return False
        self._reload_failing = False
        with self._lock:
            self._states = states
        return True

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.dispatcher.stop(timeout)
        self.db.close()


def _rule_view(rule: Rule, state: AlertState, dashboard: str) -> dict[str, Any]:
    return {
        "name": rule.name,
        "kind": rule.kind,
        "state": state.state,
        "value": state.value,
        "threshold": rule.threshold,
        "unit": UNITS[rule.kind],
        "window": format_duration(rule.window),
        "for": format_duration(rule.for_),
        "keep_firing_for": format_duration(rule.keep_firing_for),
        "repeat_interval": format_duration(rule.repeat_interval),
        "labels": {**rule.selector.labels(), **rule.labels},
        "channels": list(rule.channels),
        "activeSince": iso(state.active_since),
        "firedAt": iso(state.fired_at),
        "lastResolvedAt": iso(state.resolved_at),
        "evaluatedAt": iso(state.evaluated_at),
        "url": dashboard_link(dashboard, rule),
    }
