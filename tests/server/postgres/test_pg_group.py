"""Group commit on one node: batches sent at once share transactions, and each still gets
its own answer: its new rows and duplicates as if stored in turn, and a refusal for the
one batch holding a value PostgreSQL can never store, without its neighbours."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import psycopg

from peekapi_otel.server._store import EventStore, validate_batch
from peekapi_otel.server.db._pg_store import PgEventStore
from server.postgres.test_pg_views import _assert_same, event

THREADS = 8
BATCHES = 25


def test_batches_sent_at_once_are_answered_one_by_one(pg_url: str, tmp_path: Path) -> None:
    pg, lite = PgEventStore(pg_url), EventStore(tmp_path / "events.db")
    answers: dict[tuple[int, int], tuple[int, int] | str] = {}
    groups: list[int] = []

    def send(thread: int) -> None:
        for i in range(BATCHES):
            # Each thread resends half of the previous thread's events: duplicates
            # across the batches of one group as well as across groups.
            first = (thread * BATCHES + i) * 40
            events = [event(n) for n in range(first - 20, first + 40) if n >= 0]
            if (thread, i) == (3, 7):
                events[5] = {**events[5], "path": "/nul\x00"}
            try:
                answers[(thread, i)] = pg.insert_rows(validate_batch(events))
            except ValueError as exc:
                answers[(thread, i)] = str(exc)

    original = pg._group._take

    def take() -> Any:
        group = original()
        groups.append(len(group))
        return group

    pg._group._take = take  # type: ignore[method-assign]
    threads = [threading.Thread(target=send, args=(t,)) for t in range(THREADS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        refused = answers.pop((3, 7))
        assert isinstance(refused, str), refused
        assert len(answers) == THREADS * BATCHES - 1
        accepted = sum(a[0] for a in answers.values() if isinstance(a, tuple))
        duplicates = sum(a[1] for a in answers.values() if isinstance(a, tuple))
        assert accepted == pg.count()
        assert duplicates == pg.duplicates()
        assert all(isinstance(a, tuple) and sum(a) in (40, 60) for a in answers.values())
        with psycopg.connect(pg_url) as conn:
            distinct = conn.execute("SELECT COUNT(DISTINCT trace_id) FROM events").fetchone()
        assert distinct == (accepted,)
        assert max(groups) > 1  # some batches did share a transaction
        # The stored rows, once each, give the figures SQLite gives (the same rows: an
        # event whose timestamp no parser reads counts when it arrived).
        lite.insert_rows(_stored(pg_url))
        assert _assert_same(pg, lite) > 100
    finally:
        pg.close()
        lite.close()


def _stored(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT method, path, status_code, response_time_ms, request_size, "
            "response_size, consumer_id, metadata, timestamp, trace_id, span_id, received_at "
            "FROM events ORDER BY trace_id"
        )
        return rows.fetchall()
