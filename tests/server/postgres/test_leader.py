"""One alert evaluator among several processes: the PostgreSQL advisory lock is held by
one, a standby takes it when the holder is SIGKILLed, and the engine runs its rounds
only while it leads."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from peekapi_otel.server.alerts import AlertEngine
from peekapi_otel.server.alerts._rules import parse_alerts
from peekapi_otel.server.db._pg_leader import ALERTS_LOCK, AdvisoryLeader
from server.alerts.support import store_events

TIMEOUT = 30.0
NODE = Path(__file__).with_name("leader_node.py")


class Node:
    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(NODE), url], stdout=subprocess.PIPE, text=True
        )

    def next_role(self, timeout: float = TIMEOUT) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "no role change in time"
        return self.proc.stdout.readline().strip()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _wait(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_one_leader_at_a_time_in_process(pg_url: str) -> None:
    one, two = AdvisoryLeader(pg_url), AdvisoryLeader(pg_url)
    try:
        assert one.is_leader()
        assert one.is_leader()  # held, not taken twice
        assert not two.is_leader()
        one.release()
        _wait(two.is_leader, "the standby to take the lock")
        assert not one.is_leader()
    finally:
        one.release()
        two.release()


@pytest.mark.slow
def test_a_standby_takes_over_when_the_holder_is_killed(pg_url: str) -> None:
    holder = Node(pg_url)
    standby = None
    try:
        assert holder.next_role() == "leader"
        standby = Node(pg_url)
        assert standby.next_role() == "standby"
        holder.stop(signal.SIGKILL)
        # Its session ends with its connection, and with it the lock.
        assert standby.next_role() == "leader"
        with psycopg.connect(pg_url) as conn:
            holders = conn.execute(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND ((classid::bigint << 32) | objid::bigint) = %s",
                (ALERTS_LOCK,),
            ).fetchone()
        assert holders == (1,)
    finally:
        holder.stop(signal.SIGKILL)
        if standby is not None:
            standby.stop()


def test_a_leader_that_lost_its_session_stops_leading(pg_url: str) -> None:
    one, two = AdvisoryLeader(pg_url), AdvisoryLeader(pg_url)
    try:
        assert one.is_leader()
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'peekapi-otel serve' AND datname = current_database()"
                " AND pid <> pg_backend_pid()"
            )
        _wait(two.is_leader, "the other to take the lock")
        assert not one.is_leader()  # its session is gone, the lock is someone else's
    finally:
        one.release()
        two.release()


def test_the_engine_evaluates_only_while_it_leads(pg_url: str, tmp_path: Path) -> None:
    config = parse_alerts(
        '[settings]\ninterval = "1s"\n\n[channels.hook]\ntype = "webhook"\n'
        'url = "http://127.0.0.1:9/unused"\n\n[[rules]]\nname = "pay-errors"\n'
        'kind = "error_rate"\nthreshold = 50\nwindow = "1m"\n'
    )
    leaders = [AdvisoryLeader(pg_url), AdvisoryLeader(pg_url)]
    engines = []
    for i, leader in enumerate(leaders):
        db = tmp_path / f"node{i}.db"
        store_events(db, [])
        engines.append(
            AlertEngine(config, db, dashboard="http://127.0.0.1:1", leader=leader.is_leader)
        )
    try:
        assert leaders[0].is_leader()
        for engine in engines:
            engine.start()
        _wait(lambda: engines[0].evaluations >= 2, "the leader's rounds")
        assert engines[1].evaluations == 0
        # The leading node goes away: its engine stops and its session ends.
        engines[0].stop()
        leaders[0].release()
        rounds = engines[0].evaluations
        _wait(lambda: engines[1].evaluations >= 1, "the standby's first round")
        assert engines[0].evaluations == rounds
    finally:
        for engine in engines:
            engine.stop()
        for leader in leaders:
            leader.release()
