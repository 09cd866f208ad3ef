"""``serve --db postgresql://...`` as a real process against a real PostgreSQL: batches
stored and de-duplicated, 503 while the database is gone and recovery after, and an
unreachable database at start retried, then given up on with the reason."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pg import PostgresServer
from server.alerts.support import event as alert_event
from server.alerts.support import receiver
from server.postgres.support import Serve, event

pytestmark = pytest.mark.slow


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT COUNT(*), COUNT(DISTINCT (trace_id, span_id)) FROM events")
        total, distinct = row.fetchone() or (0, 0)
    assert total == distinct  # never a pair twice
    return int(total)


def test_batches_are_stored_and_deduplicated(pg_url: str, tmp_path: Path) -> None:
    serve = Serve(pg_url, tmp_path / "serve.log")
    try:
        assert serve.post([event(i) for i in range(50)]) == (200, {"accepted": 50, "duplicates": 0})
        assert serve.post([event(i) for i in range(40, 60)]) == (
            200,
            {"accepted": 10, "duplicates": 10},
        )
        status, reply = serve.post([{"method": "GET"}])
        assert status == 400
        assert "missing field" in reply["error"]
    finally:
        assert serve.stop() == 0
    assert _count(pg_url) == 60


def test_a_lost_database_answers_503_then_recovers(own_pg: PostgresServer, tmp_path: Path) -> None:
    serve = Serve(own_pg.url, tmp_path / "serve.log")
    try:
        assert serve.post([event(i) for i in range(10)])[0] == 200
        own_pg.stop()
        # Sent while the database is gone: refused with 503, so the exporter retries it.
        lost = [event(i) for i in range(10, 20)]
        status, reply = serve.post(lost)
        assert status == 503, reply
        assert "PostgreSQL" in reply["error"]
        assert serve.post(lost)[0] == 503  # and again, without a hang, while it is down
        own_pg.start()
        # The retry of the refused batch and a repeat of an acknowledged one, sent again
        # as an exporter does until the ingest takes it (it reconnects at most every
        # few seconds).
        deadline = time.monotonic() + 30
        status, reply = serve.post([*lost, event(0)])
        while status == 503 and time.monotonic() < deadline:
            time.sleep(0.2)
            status, reply = serve.post([*lost, event(0)])
        assert (status, reply) == (200, {"accepted": 10, "duplicates": 1})
    finally:
        assert serve.stop() == 0
    assert _count(own_pg.url) == 20
    log = serve.stderr()
    assert "lost PostgreSQL at peekapi@127.0.0.1" in log
    assert "is reachable again" in log


def test_an_unreachable_database_at_start_is_retried(
    own_pg: PostgresServer, tmp_path: Path
) -> None:
    own_pg.stop()
    serve = Serve(own_pg.url, tmp_path / "serve.log", wait_start=False)
    try:
        deadline = time.monotonic() + 30
        while "retrying in" not in serve.stderr() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (
            f"cannot reach PostgreSQL at peekapi@127.0.0.1:{own_pg.port}/peekapi" in serve.stderr()
        )
        own_pg.start()
        serve.wait_started()
        assert serve.post([event(1)])[0] == 200
    finally:
        assert serve.stop() == 0


def test_start_gives_up_after_db_wait_with_the_reason(own_pg: PostgresServer) -> None:
    own_pg.stop()
    url = own_pg.url.replace("peekapi@", "peekapi:secret-pw@")
    script = str(Path(sys.executable).parent / "peekapi-otel")
    done = subprocess.run(
        [script, "serve", "--port", "0", "--db", url, "--db-wait", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "cannot reach PostgreSQL at peekapi@127.0.0.1" in done.stderr
    assert "attempts in 2s" in done.stderr
    assert "secret-pw" not in done.stderr + done.stdout


def test_the_alert_evaluator_fails_over_to_a_standby(pg_url: str, tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.toml"
    alerts.write_text(
        '[settings]\ninterval = "1s"\n\n'
        '[channels.hook]\ntype = "webhook"\nurl_env = "TEST_ALERT_HOOK"\n\n'
        '[[rules]]\nname = "pay-errors"\nkind = "error_rate"\nendpoint = "POST /pay"\n'
        'threshold = 50\nwindow = "4s"\n'
    )
    with receiver() as hook:
        os.environ["TEST_ALERT_HOOK"] = f"{hook.url}/alerts"
        try:
            first = Serve(pg_url, tmp_path / "first.log", "--alerts", str(alerts))
            _wait(lambda: "now evaluates the alerts" in first.stderr(), "the first to lead")
            second = Serve(pg_url, tmp_path / "second.log", "--alerts", str(alerts))
        finally:
            del os.environ["TEST_ALERT_HOOK"]
        try:
            now = time.time() - 1
            errors = [alert_event(now, status=500, method="POST", path="/pay")] * 4
            assert first.post(errors)[0] == 200
            assert [r.body["state"] for r in hook.wait_for(1)] == ["firing"]
            # Killed once the log says "sent": a kill between the webhook's answer and
            # that update would send it once more (delivery is at least once).
            _wait(lambda: _notifications(pg_url) == [("firing", "sent")], "the log's update")
            # The standby's dashboard shows the state the leader stored.
            _wait(lambda: _alert_state(second) == "firing", "the standby to show firing")
            first.kill()
            # The standby takes the lock, reads the firing state and resolves the alert
            # once the errors leave the window: no second "firing".
            received = hook.wait_for(2)
            assert [r.body["state"] for r in received] == ["firing", "resolved"], hook.bodies()
            assert "now evaluates the alerts" in second.stderr()
            time.sleep(2)
            assert len(hook.requests) == 2
        finally:
            first.stop()
            assert second.stop() == 0


def _alert_state(serve: Serve) -> str:
    url = f"http://127.0.0.1:{serve.port}/api/alerts"
    with urllib.request.urlopen(url, timeout=30) as response:
        (rule,) = json.loads(response.read())["rules"]
    return str(rule["state"])


def _notifications(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT event, status FROM alert_notifications ORDER BY id")
        return [(str(e), str(s)) for e, s in rows.fetchall()]


def _wait(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + 60
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _get(serve: Serve, path: str) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{serve.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_dashboard_routes_answer_on_postgresql(own_pg: PostgresServer, tmp_path: Path) -> None:
    """Every view answers from the database; a lost database is a 503 with its reason,
    never a dropped connection."""
    serve = Serve(own_pg.url, tmp_path / "serve.log")
    try:
        assert serve.post([event(i) for i in range(5)])[0] == 200
        status, summary = _get(serve, "/api/summary")
        assert status == 200
        assert summary["totals"]["requests"] == 5
        assert [(e["method"], e["path"], e["requests"]) for e in summary["endpoints"]] == [
            ("POST", "/pay", 5)
        ]
        status, view = _get(serve, "/api/endpoint?method=POST&path=/pay")
        assert status == 200
        assert view["top_consumers"] == [{"consumer_id": "c1", "requests": 5, "errors": 0}]
        status, view = _get(serve, "/api/consumer?consumer=c1")
        assert status == 200
        assert (view["requests"], view["first_seen"]) == (5, 1796284800)
        own_pg.stop()
        for path in ("/api/summary", "/api/endpoint?method=POST&path=/pay"):
            status, reply = _get(serve, path)
            assert status == 503
            assert "PostgreSQL" in reply["error"]
    finally:
        own_pg.start()
        assert serve.stop() == 0
    assert "Traceback" not in serve.stderr()


def test_retention_and_report_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    """``serve --retention`` deletes the old raw rows and the views still count them;
    ``report --db postgresql://...`` prints the same figures."""
    from peekapi_otel.server._store import validate_batch
    from peekapi_otel.server.db._pg_store import PgEventStore

    old = [{**event(i), "timestamp": "2026-01-05T10:00:00Z"} for i in range(30)]
    recent = [{**event(i, "r"), "timestamp": _iso(time.time() - 60)} for i in range(20)]
    store = PgEventStore(pg_url)
    try:
        store.insert_rows(validate_batch(old + recent))
    finally:
        store.close()
    serve = Serve(pg_url, tmp_path / "serve.log", "--retention", "1d")
    try:
        _wait(lambda: _count(pg_url) == 20, "the retention to delete the old raw rows")
        status, summary = _get(serve, "/api/summary")
        assert status == 200
        assert summary["totals"]["requests"] == 50
        assert len(summary["latest"]) == 20
        status, view = _get(
            serve, "/api/consumer?consumer=c1&from=2026-01-05T00:00:00Z&to=2026-01-06T00:00:00Z"
        )
        assert (status, view["requests"]) == (200, 30)
    finally:
        assert serve.stop() == 0
    done = subprocess.run(
        [str(Path(sys.executable).parent / "peekapi-otel"), "report", "--db", pg_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    totals = done.stdout.splitlines()[3].split()
    assert totals[0] == "50"
    assert re.search(r"^POST +/pay +50 ", done.stdout, re.MULTILINE)


def _iso(seconds: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat()


def test_report_names_what_it_cannot_read(pg_url: str) -> None:
    script = str(Path(sys.executable).parent / "peekapi-otel")
    unreachable = "postgresql://peekapi@127.0.0.1:1/peekapi"
    for url, reason in ((pg_url, "holds no peekapi-otel events"), (unreachable, "cannot reach")):
        done = subprocess.run(
            [script, "report", "--db", url], capture_output=True, text=True, timeout=60, check=False
        )
        assert (done.returncode, done.stdout) == (1, "")
        assert reason in done.stderr
        assert "Traceback" not in done.stderr


def test_the_stream_of_one_node_shows_what_another_stores(pg_url: str, tmp_path: Path) -> None:
    import http.client

    first = Serve(pg_url, tmp_path / "first.log")
    second = Serve(pg_url, tmp_path / "second.log")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", second.port, timeout=30)
        conn.request("GET", "/api/stream?consumer=c1", headers={"Host": "127.0.0.1"})
        stream = conn.getresponse()
        assert stream.status == 200
        assert first.post([event(i) for i in range(3)])[0] == 200
        deadline = time.monotonic() + 30
        line = b""
        while not line.startswith(b"data: "):
            assert time.monotonic() < deadline, "nothing on the other node's stream"
            line = stream.fp.readline()
            assert line, "the stream ended"
        assert [e["consumer_id"] for e in json.loads(line[6:])] == ["c1", "c1", "c1"]
        conn.close()
    finally:
        assert first.stop() == 0
        assert second.stop() == 0
