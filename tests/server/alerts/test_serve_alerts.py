"""``serve --alerts`` and ``alerts test`` as real processes: a webhook receiver on
loopback sees the alert fire and resolve as events are posted; a bad file stops serve
from starting."""

from __future__ import annotations

import datetime
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.alerts.support import Receiver, event, receiver

pytestmark = pytest.mark.slow

START_LINE = re.compile(r"^peekapi-otel ingest listening on http://127\.0\.0\.1:(\d+) ")
TIMEOUT = 30.0


def _script() -> str:
    return str(Path(sys.executable).parent / "peekapi-otel")


class Serve:
    def __init__(self, db: Path, alerts: Path, env: dict[str, str] | None = None) -> None:
        self.stderr_path = db.with_suffix(".stderr")
        with self.stderr_path.open("w") as err:
            self.proc = subprocess.Popen(
                [_script(), "serve", "--port", "0", "--db", str(db), "--alerts", str(alerts)],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env={**os.environ, **(env or {})},
            )
        try:
            self.port = self._read_port()
        except BaseException:
            self.stop()
            raise

    def _read_port(self) -> int:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                match = START_LINE.match(self.proc.stdout.readline())
                assert match, self.stderr()
                return int(match.group(1))
            if self.proc.poll() is not None:
                break
        raise RuntimeError(f"serve did not start: {self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def post(self, events: list[dict[str, Any]]) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v1/events",
            data=json.dumps(events).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            assert json.loads(response.read())["accepted"] == len(events)

    def alerts(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/api/alerts"
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def _alerts_file(tmp_path: Path, hook: Receiver) -> Path:
    path = tmp_path / "alerts.toml"
    path.write_text(
        '[settings]\ninterval = "1s"\n\n'
        '[channels.hook]\ntype = "webhook"\nurl_env = "TEST_ALERT_HOOK"\n\n'
        '[[rules]]\nname = "pay-errors"\nkind = "error_rate"\nendpoint = "POST /pay"\n'
        'threshold = 50\nwindow = "10m"\n'
    )
    return path


def _now_events(n: int, status: int) -> list[dict[str, Any]]:
    # One second back: the window ends at the current whole second.
    at = datetime.datetime.now(datetime.timezone.utc).timestamp() - 1
    return [event(at, status=status, method="POST", path="/pay") for _ in range(n)]


def _wait(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as server:
        yield server


def test_serve_fires_then_resolves_to_a_webhook(tmp_path: Path, hook: Receiver) -> None:
    env = {"TEST_ALERT_HOOK": f"{hook.url}/peekapi"}
    serve = Serve(tmp_path / "events.db", _alerts_file(tmp_path, hook), env)
    try:
        assert serve.alerts()["rules"][0]["state"] == "inactive"
        serve.post(_now_events(5, 500))
        hook.wait_for(1, TIMEOUT)
        assert [b["state"] for b in hook.bodies()] == ["firing"]
        _wait(lambda: serve.alerts()["rules"][0]["state"] == "firing", "firing in /api/alerts")
        # 5 errors among 55 requests: 9 %, under the 50 % threshold.
        serve.post(_now_events(50, 200))
        hook.wait_for(2, TIMEOUT)
        firing, resolved = hook.bodies()
        assert resolved["state"] == "resolved"
        assert firing["value"] == 100.0
        assert resolved["value"] == 9.09
        assert firing["url"].startswith(f"http://127.0.0.1:{serve.port}/?range=")
        assert hook.requests[0].path == "/peekapi"
        # The receiver records a request before it answers: wait for the log to say sent.
        _wait(lambda: serve.alerts()["channels"][0]["sent"] == 2, "both marked sent")
        snapshot = serve.alerts()
        assert snapshot["rules"][0]["state"] == "inactive"
        # The webhook URL came from the environment: not in the API, not on stderr.
        assert hook.url not in json.dumps(snapshot)
    finally:
        assert serve.stop() == 0
    assert hook.url not in serve.stderr()
    assert len(hook.requests) == 2


def test_serve_refuses_an_invalid_alerts_file(tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.toml"
    alerts.write_text('[[rules]]\nname = "x"\nkind = "latency"\nwindow = "5m"\nthreshold = -1\n')
    db = tmp_path / "e.db"
    result = subprocess.run(
        [_script(), "serve", "--port", "0", "--db", str(db), "--alerts", str(alerts)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 2
    assert result.stdout == ""  # never printed the listening line
    assert result.stderr == (
        f"peekapi-otel serve: {alerts}:5: rule 'x': threshold must be a number >= 0, not -1\n"
    )
    assert not db.exists()


def test_alerts_test_sends_a_test_notification(tmp_path: Path, hook: Receiver) -> None:
    alerts = _alerts_file(tmp_path, hook)
    result = subprocess.run(
        [_script(), "alerts", "test", "pay-errors", "--alerts", str(alerts)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "TEST_ALERT_HOOK": f"{hook.url}/peekapi"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "pay-errors -> hook (webhook): sent\n"
    (body,) = hook.bodies()
    assert body["state"] == "test"
    assert body["rule"] == "pay-errors"
    assert hook.url not in result.stdout + result.stderr


def test_alerts_test_reports_a_failing_channel(tmp_path: Path, hook: Receiver) -> None:
    alerts = _alerts_file(tmp_path, hook)
    env = {k: v for k, v in os.environ.items() if k != "TEST_ALERT_HOOK"}
    result = subprocess.run(
        [_script(), "alerts", "test", "pay-errors", "--alerts", str(alerts)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
    )
    assert result.returncode == 1
    assert result.stdout == (
        "pay-errors -> hook (webhook): failed: environment variable TEST_ALERT_HOOK is not set\n"
    )
    unknown = subprocess.run(
        [_script(), "alerts", "test", "nope", "--alerts", str(alerts)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert unknown.returncode == 2
    assert "no rule named 'nope' (rules: pay-errors)" in unknown.stderr


def test_a_hanging_channel_does_not_hold_up_ingest(tmp_path: Path) -> None:
    release = threading.Event()
    with receiver(hang=release) as hook:
        alerts = tmp_path / "alerts.toml"
        alerts.write_text(
            '[settings]\ninterval = "1s"\n\n'
            f'[channels.hook]\ntype = "webhook"\nurl = "{hook.url}"\ntimeout = 300\n\n'
            '[[rules]]\nname = "pay-errors"\nkind = "error_rate"\nthreshold = 50\n'
            'window = "10m"\n'
        )
        serve = Serve(tmp_path / "events.db", alerts)
        try:
            serve.post(_now_events(5, 500))
            hook.wait_for(1, TIMEOUT)  # the notification is now stuck in the channel
            # Ingest and the alerts API go on while the channel holds the delivery
            # (each of these would time out if they waited for it).
            for _ in range(20):
                serve.post(_now_events(10, 500))
            snapshot = serve.alerts()
            assert snapshot["rules"][0]["state"] == "firing"
            assert snapshot["channels"][0]["pending"] == 1
            release.set()
            _wait(lambda: serve.alerts()["channels"][0]["sent"] == 1, "the delivery")
        finally:
            release.set()
            assert serve.stop() == 0
    assert [b["state"] for b in hook.bodies()] == ["firing"]
