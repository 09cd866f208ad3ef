"""The engine over a real SQLite file with an injected clock: the full state machine
(pending, firing, keep_firing_for, repeat, resolved), what the webhook receives, and
persistence across a restart."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peekapi_otel.server.alerts import AlertEngine
from peekapi_otel.server.alerts._rules import parse_alerts
from server.alerts.support import Clock, Receiver, event, receiver, store_events

DASHBOARD = "http://127.0.0.1:8787"


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as server:
        yield server


def _config(url: str, rule: str) -> Any:
    return parse_alerts(
        f'[channels.hook]\ntype = "webhook"\nurl = "{url}/alerts"\n\n'
        '[[rules]]\nname = "pay-errors"\nkind = "error_rate"\nthreshold = 50\n'
        f'window = "1m"\nendpoint = "POST /pay"\n{rule}'
    )


class Scenario:
    """One engine, its clock and database, and a way to make the rule hold or not."""

    def __init__(self, db: Path, hook: Receiver, rule: str) -> None:
        self.db = db
        self.hook = hook
        self.config = _config(hook.url, rule)
        self.clock = Clock()
        store_events(db, [])  # serve creates the events table before the engine
        self.engine = self.start()

    def start(self) -> AlertEngine:
        return AlertEngine(self.config, self.db, dashboard=DASHBOARD, clock=self.clock)

    def restart(self) -> None:
        self.engine.stop()
        self.engine = self.start()

    def failing(self) -> None:
        """Errors in the last second: the rule holds for the next minute."""
        now = self.clock.now
        store_events(
            self.db, [event(now - 1, status=500, method="POST", path="/pay") for _ in range(4)]
        )

    def tick(self, seconds: float, *, failing: bool) -> list[str]:
        """Move the clock, evaluate, deliver; returns the states the webhook received."""
        self.clock.advance(seconds)
        if failing:
            self.failing()
        before = len(self.hook.requests)
        self.engine.evaluate()
        self.engine.dispatcher.deliver_due()
        return [r.body["state"] for r in self.hook.requests[before:]]

    def state(self) -> str:
        (rule,) = self.engine.snapshot()["rules"]
        return str(rule["state"])


def test_pending_for_then_firing_then_resolved(tmp_path: Path, hook: Receiver) -> None:
    s = Scenario(tmp_path / "e.db", hook, 'for = "2m"\n')
    assert s.tick(0, failing=True) == []
    assert s.state() == "pending"
    assert s.tick(60, failing=True) == []
    assert s.state() == "pending"
    assert s.tick(60, failing=True) == ["firing"]
    assert s.state() == "firing"
    assert s.tick(30, failing=False) == []  # the errors are still inside the window
    # 60 s after the last errors the window is empty: resolved at once (no keep_firing_for).
    assert s.tick(30, failing=False) == ["resolved"]
    assert s.state() == "inactive"
    firing, resolved = s.hook.bodies()
    assert firing["startsAt"] == "2026-12-03T08:00:00+00:00"  # when it began to hold
    assert firing["endsAt"] is None
    assert resolved["startsAt"] == firing["startsAt"]
    assert resolved["endsAt"] == "2026-12-03T08:03:00+00:00"
    s.engine.stop()


def test_the_webhook_payload(tmp_path: Path, hook: Receiver) -> None:
    s = Scenario(tmp_path / "e.db", hook, 'labels = { team = "payments" }\n')
    s.tick(0, failing=True)
    (request,) = s.hook.requests
    assert request.path == "/alerts"
    assert request.headers["Content-Type"] == "application/json"
    assert request.body == {
        "version": "1",
        "rule": "pay-errors",
        "kind": "error_rate",
        "state": "firing",
        "value": 100.0,
        "threshold": 50.0,
        "unit": "%",
        "window": "1m",
        "windowSeconds": 60,
        "labels": {
            "alertname": "pay-errors",
            "kind": "error_rate",
            "method": "POST",
            "path": "/pay",
            "team": "payments",
        },
        "description": "",
        "startsAt": "2026-12-03T08:00:00+00:00",
        "endsAt": None,
        "sentAt": "2026-12-03T08:00:00+00:00",
        "url": "http://127.0.0.1:8787/?range=15m&method=POST&path=%2Fpay",
        "summary": "[FIRING] pay-errors: error rate 100% > 50% over 1m (method=POST, path=/pay)",
    }
    s.engine.stop()


def test_pending_that_stops_holding_goes_back_without_a_word(
    tmp_path: Path, hook: Receiver
) -> None:
    s = Scenario(tmp_path / "e.db", hook, 'for = "5m"\n')
    s.tick(0, failing=True)
    s.tick(60, failing=True)
    assert s.state() == "pending"
    assert s.tick(60, failing=False) == []
    assert s.tick(60, failing=False) == []
    assert s.state() == "inactive"
    # Holding again starts a new pending period: `for` counts from here.
    s.tick(60, failing=True)
    assert s.tick(240, failing=True) == []
    assert s.tick(60, failing=True) == ["firing"]
    assert s.hook.bodies()[0]["startsAt"] == "2026-12-03T08:04:00+00:00"
    s.engine.stop()


def test_keep_firing_for_rides_out_a_flap(tmp_path: Path, hook: Receiver) -> None:
    s = Scenario(tmp_path / "e.db", hook, 'keep_firing_for = "3m"\n')
    assert s.tick(0, failing=True) == ["firing"]
    # The window empties (not holding) for two minutes, then errors again: no resolved,
    # no second firing.
    assert s.tick(60, failing=False) == []
    assert s.tick(60, failing=False) == []
    assert s.state() == "firing"
    assert s.tick(60, failing=True) == []
    # Quiet for good from 4 min (the window empties then): resolved 3 minutes later.
    assert s.tick(60, failing=False) == []
    assert s.tick(60, failing=False) == []
    assert s.tick(60, failing=False) == []
    assert s.tick(59, failing=False) == []
    assert s.state() == "firing"
    assert s.tick(1, failing=False) == ["resolved"]
    assert s.hook.bodies()[1]["endsAt"] == "2026-12-03T08:07:00+00:00"
    assert [b["state"] for b in s.hook.bodies()] == ["firing", "resolved"]
    s.engine.stop()


def test_repeat_interval_while_firing(tmp_path: Path, hook: Receiver) -> None:
    s = Scenario(tmp_path / "e.db", hook, 'repeat_interval = "5m"\n')
    received = [s.tick(0 if i == 0 else 60, failing=True) for i in range(12)]
    # Firing at 0 min, repeated at 5 and 10 min.
    assert [i for i, states in enumerate(received) if states] == [0, 5, 10]
    assert all(states in ([], ["firing"]) for states in received)
    s.engine.stop()


def test_no_repeat_interval_means_one_notification_per_episode(
    tmp_path: Path, hook: Receiver
) -> None:
    s = Scenario(tmp_path / "e.db", hook, 'repeat_interval = "0s"\n')
    sent = [s.tick(3600, failing=True) for _ in range(3)]
    assert sent == [["firing"], [], []]
    s.engine.stop()


def test_a_restart_neither_repeats_nor_forgets(tmp_path: Path, hook: Receiver) -> None:
    s = Scenario(tmp_path / "e.db", hook, 'keep_firing_for = "2m"\nrepeat_interval = "1h"\n')
    assert s.tick(0, failing=True) == ["firing"]
    s.restart()
    # Still holding after the restart: the firing notification was sent, not again.
    assert s.tick(30, failing=True) == []
    assert s.state() == "firing"
    s.restart()
    # Stops holding at 90 s; keep_firing_for counts from there, across a restart.
    assert s.tick(60, failing=False) == []
    s.restart()
    assert s.tick(60, failing=False) == []
    assert s.state() == "firing"
    assert s.tick(60, failing=False) == ["resolved"]
    s.restart()
    assert s.tick(60, failing=False) == []
    assert [b["state"] for b in s.hook.bodies()] == ["firing", "resolved"]
    s.engine.stop()


def test_a_notification_queued_before_a_restart_is_delivered_after_it(
    tmp_path: Path, hook: Receiver
) -> None:
    db = tmp_path / "e.db"
    s = Scenario(db, hook, "")
    s.failing()
    assert s.engine.evaluate() == [("pay-errors", "firing")]
    # The process dies before delivering.
    s.engine.stop()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM alert_notifications").fetchall() == [("pending",)]
    s.engine = s.start()
    assert s.engine.dispatcher.deliver_due() == 1
    assert [b["state"] for b in hook.bodies()] == ["firing"]
    # And the state came back too: no second firing for the same episode.
    assert s.tick(10, failing=True) == []
    s.engine.stop()


def test_the_alerts_snapshot(tmp_path: Path, hook: Receiver) -> None:
    s = Scenario(tmp_path / "e.db", hook, 'for = "1m"\n')
    s.tick(0, failing=True)
    snapshot = s.engine.snapshot()
    (rule,) = snapshot["rules"]
    assert rule["name"] == "pay-errors"
    assert rule["state"] == "pending"
    assert rule["value"] == 100.0
    assert rule["activeSince"] == "2026-12-03T08:00:00+00:00"
    assert rule["firedAt"] is None
    assert (rule["window"], rule["for"]) == ("1m", "1m")
    s.tick(60, failing=True)
    snapshot = s.engine.snapshot()
    assert snapshot["rules"][0]["state"] == "firing"
    assert snapshot["channels"] == [
        {
            "name": "hook",
            "type": "webhook",
            "sent": 1,
            "pending": 0,
            "failed": 0,
            "attempts": 1,
            "failed_attempts_since_start": 0,
        }
    ]
    assert [n["event"] for n in snapshot["notifications"]] == ["firing"]
    s.engine.stop()


def test_inactivity_on_a_new_database_waits_out_its_window(tmp_path: Path, hook: Receiver) -> None:
    db = tmp_path / "e.db"
    store_events(db, [])
    config = parse_alerts(
        f'[channels.hook]\ntype = "webhook"\nurl = "{hook.url}"\n\n'
        '[[rules]]\nname = "acme-silent"\nkind = "inactivity"\nconsumer = "acme"\n'
        'window = "10m"\n'
    )
    clock = Clock()
    engine = AlertEngine(config, db, dashboard=DASHBOARD, clock=clock)
    assert engine.evaluate() == []
    clock.advance(300)
    engine.stop()
    # The first evaluation is remembered across a restart.
    engine = AlertEngine(config, db, dashboard=DASHBOARD, clock=clock)
    assert engine.evaluate() == []
    clock.advance(300)
    assert engine.evaluate() == [("acme-silent", "firing")]
    engine.dispatcher.deliver_due()
    # acme calls: resolved.
    store_events(db, [event(clock.now - 1, consumer="acme")])
    clock.advance(1)
    assert engine.evaluate() == [("acme-silent", "resolved")]
    engine.dispatcher.deliver_due()
    assert [(b["state"], b["value"]) for b in hook.bodies()] == [
        ("firing", None),
        ("resolved", 2.0),  # seconds since acme's request
    ]
    engine.stop()


def test_channels_deliver_on_threads_of_their_own(tmp_path: Path) -> None:
    """A channel that hangs holds only its own notifications; a notification queued for
    a channel since removed from the file is given up when the engine starts."""
    db = tmp_path / "e.db"
    store_events(db, [])
    release = threading.Event()
    with receiver(hang=release) as stuck, receiver() as fine:
        channels = (
            f'[channels.stuck]\ntype = "webhook"\nurl = "{stuck.url}"\ntimeout = 60\n\n'
            f'[channels.fine]\ntype = "webhook"\nurl = "{fine.url}"\n\n'
        )
        rule = (
            '[[rules]]\nname = "pay-errors"\nkind = "error_rate"\nthreshold = 50\nwindow = "1m"\n'
        )
        clock = Clock()
        old = AlertEngine(
            parse_alerts(channels + '[channels.gone]\ntype = "slack"\nurl = "http://x/"\n' + rule),
            db,
            dashboard=DASHBOARD,
            clock=clock,
        )
        store_events(db, [event(clock.now - 1, status=500)])
        assert old.evaluate() == [("pay-errors", "firing")]
        old.stop()  # before delivering anything: three notifications pending
        engine = AlertEngine(parse_alerts(channels + rule), db, dashboard=DASHBOARD, clock=clock)
        engine.start()
        try:
            fine.wait_for(1, 30)
            stuck.wait_for(1, 30)
            assert [b["state"] for b in fine.bodies()] == ["firing"]
            release.set()
        finally:
            release.set()
            engine.stop(timeout=30)
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT channel, status, error FROM alert_notifications ORDER BY channel"
        ).fetchall()
    assert rows[0] == ("fine", "sent", None)
    assert rows[1] == ("gone", "failed", "channel no longer configured")
    assert rows[2][:2] == ("stuck", "sent")
