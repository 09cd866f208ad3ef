"""``serve --db postgresql://...`` as a real process against a real PostgreSQL: batches
stored and de-duplicated, 503 while the database is gone and recovery after, and an
unreachable database at start retried, then given up on with the reason."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from pg import PostgresServer
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


def test_alerts_are_refused_on_postgresql_for_now(pg_url: str, tmp_path: Path) -> None:
    script = str(Path(sys.executable).parent / "peekapi-otel")
    alerts = tmp_path / "alerts.toml"
    alerts.write_text("")
    done = subprocess.run(
        [script, "serve", "--port", "0", "--db", pg_url, "--alerts", str(alerts)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--alerts does not work with PostgreSQL yet" in done.stderr
