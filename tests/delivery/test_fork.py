"""Fork: each child delivers its own events exactly once; nothing queued before the fork
is sent twice (SPEC §6 "Fork")."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from delivery.support import (
    BIN,
    Proc,
    child_env,
    duplicates,
    processes,
    read_keys,
    wait_until,
    worker,
)
from ingest import Ingest, free_port  # type: ignore[import-not-found]

SLOW_FLUSH = {"PEEKAPI_FLUSH_INTERVAL": "30"}  # events are still queued at fork time


@pytest.mark.parametrize("mode", ["fork", "mp"])
def test_children_deliver_own_events_once(ingest: Ingest, tmp_path: Path, mode: str) -> None:
    keys_file = tmp_path / "keys"
    with processes() as started:
        proc = worker(
            started,
            ingest.url,
            tmp_path,
            mode,
            "--count",
            "150",
            "--children",
            "2",
            "--keys",
            str(keys_file),
            **SLOW_FLUSH,
        )
        assert proc.json_line("children ", 60) == [0, 0]
        assert proc.wait(30) == 0
    expected = read_keys(Path(f"{keys_file}*"))
    assert len(expected) == 450
    got = ingest.keys()
    assert set(got) == expected
    assert duplicates(got) == 0


@pytest.mark.slow
@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])
def test_gunicorn_workers(ingest: Ingest, tmp_path: Path, preload: bool) -> None:
    port = free_port()
    args = [
        str(BIN / "gunicorn"),
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "10",
        "flask_app:app",
    ]
    if preload:
        args.insert(1, "--preload")
    env = child_env(ingest.url, tmp_path, PEEKAPI_FLUSH_INTERVAL="30")
    with processes() as started:
        server = Proc(args, env)
        started.append(server)
        url = f"http://127.0.0.1:{port}"
        answered: list[int] = []  # readiness probes that reached the app make events too
        unanswered: list[str] = []
        assert wait_until(lambda: _up(url, answered, unanswered), 20), server.output()
        pids = set()
        with httpx.Client() as client:
            for i in range(60):
                reply = client.get(f"{url}/items/{i}", headers={"connection": "close"})
                pids.add(reply.json()["pid"])
        server.signal(signal.SIGTERM)
        assert server.wait(30) == 0, server.output()
    got = ingest.keys()
    expected = 60 + len(answered)
    assert expected <= len(got) <= expected + len(unanswered), server.output()
    assert duplicates(got) == 0, server.output()
    assert pids  # which worker serves is the kernel's choice; each delivers its own


def _up(url: str, answered: list[int], unanswered: list[str]) -> bool:
    """gunicorn listens before its workers have booted: a probe waits in the backlog
    until one has (hence the long timeout), and one that timed out on our side may still
    be handled later, so it may make an event too."""
    try:
        status = httpx.get(f"{url}/items/0", timeout=10).status_code
    except httpx.TimeoutException as exc:
        unanswered.append(type(exc).__name__)
        return False
    except httpx.HTTPError:
        return False
    answered.append(status)
    return status == 200
