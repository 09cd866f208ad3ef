"""Alert state and the notification log, in the events database (tables of their own).

A state change and the notifications it calls for are written in one transaction, and a
notification leaves the log's ``pending`` status only once its channel took it. So a
restart neither repeats a notification (the state says it was already sent) nor forgets
one (a pending row is delivered by the next process). Delivery is at least once: a crash
between a channel's answer and the row update sends that one notification again.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from peekapi_otel.server.alerts._state import AlertState

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS alert_state (
    rule TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    active_since REAL,
    fired_at REAL,
    last_active REAL,
    last_sent REAL,
    resolved_at REAL,
    value REAL,
    evaluated_at REAL,
    watched_since REAL,
    keep_firing_since REAL
);
CREATE TABLE IF NOT EXISTS alert_notifications (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    channel TEXT NOT NULL,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    sent_at REAL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS alert_notifications_due
    ON alert_notifications (status, next_attempt_at);
"""

_STATE_COLUMNS: Final = tuple(f.name for f in dataclasses.fields(AlertState))


def _pending(channel: str | None) -> tuple[str, tuple[str, ...]]:
    if channel is None:
        return "status = 'pending'", ()
    return "status = 'pending' AND channel = ?", (channel,)


@dataclass(frozen=True)
class Notification:
    id: int
    rule: str
    channel: str
    event: str
    payload: dict[str, Any]
    attempts: int


class AlertDatabase:
    """The alert tables, on a writer connection of their own (SQLite serialises it with
    the ingest writer; each transaction here is a few rows)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        uri = f"{self.path.resolve().as_uri()}?mode=rwc"
        self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(SCHEMA)

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def states(self) -> dict[str, AlertState]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT rule, {', '.join(_STATE_COLUMNS)} FROM alert_state"
            ).fetchall()
        return {row[0]: AlertState(*row[1:]) for row in rows}

    def save(
        self,
        rule: str,
        state: AlertState,
        notifications: Iterable[tuple[str, str, dict[str, Any]]],
        now: float,
    ) -> None:
        """Store ``state`` and queue ``(channel, event, payload)`` notifications, atomically."""
        values = [getattr(state, c) for c in _STATE_COLUMNS]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    f"INSERT OR REPLACE INTO alert_state (rule, {', '.join(_STATE_COLUMNS)}) "
                    f"VALUES (?{', ?' * len(_STATE_COLUMNS)})",
                    [rule, *values],
                )
                self._conn.executemany(
                    "INSERT INTO alert_notifications (rule, channel, event, payload, "
                    "created_at, status, next_attempt_at) VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                    [
                        (rule, channel, event, json.dumps(payload), now, now)
                        for channel, event, payload in notifications
                    ],
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def due(self, now: float, *, channel: str | None = None, limit: int = 50) -> list[Notification]:
        """Pending notifications due at ``now`` (of one channel, or all), oldest first."""
        where, params = _pending(channel)
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, rule, channel, event, payload, attempts FROM alert_notifications "
                f"WHERE {where} AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
                (*params, now, limit),
            ).fetchall()
        return [Notification(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

    def next_due(self, channel: str | None = None) -> float | None:
        where, params = _pending(channel)
        with self._lock:
            row = self._conn.execute(
                f"SELECT MIN(next_attempt_at) FROM alert_notifications WHERE {where}", params
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def pending_channels(self) -> set[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT channel FROM alert_notifications WHERE status = 'pending'"
            ).fetchall()
        return {str(r[0]) for r in rows}

    def mark_sent(self, notification_id: int, now: float) -> None:
        self._update(
            "UPDATE alert_notifications SET status = 'sent', attempts = attempts + 1, "
            "sent_at = ?, error = NULL WHERE id = ?",
            (now, notification_id),
        )

    def mark_failed(self, notification_id: int, error: str, retry_at: float | None) -> None:
        """Record a failed attempt: try again at ``retry_at``, or give up when None."""
        if retry_at is None:
            self._update(
                "UPDATE alert_notifications SET status = 'failed', attempts = attempts + 1, "
                "error = ? WHERE id = ?",
                (error, notification_id),
            )
        else:
            self._update(
                "UPDATE alert_notifications SET attempts = attempts + 1, error = ?, "
                "next_attempt_at = ? WHERE id = ?",
                (error, retry_at, notification_id),
            )

    def _update(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._lock:
            self._conn.execute(sql, params)

    def log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest notifications, newest first (payloads left out)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, rule, channel, event, status, attempts, created_at, sent_at, error "
                "FROM alert_notifications ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        keys = ("id", "rule", "channel", "event", "status", "attempts", "created_at")
        return [dict(zip((*keys, "sent_at", "error"), row, strict=True)) for row in rows]

    def channel_totals(self) -> dict[str, dict[str, int]]:
        """Per channel: notifications sent, pending, failed (given up), and attempts."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT channel, status, COUNT(*), SUM(attempts) FROM alert_notifications "
                "GROUP BY channel, status"
            ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for channel, status, n, attempts in rows:
            entry = out.setdefault(channel, {"sent": 0, "pending": 0, "failed": 0, "attempts": 0})
            entry[status] = int(n)
            entry["attempts"] += int(attempts or 0)
        return out
