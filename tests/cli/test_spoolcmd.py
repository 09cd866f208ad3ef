"""`peekapi-otel spool` as a real process: inspection and `--drain` to a real ingest."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cli.support import Result, run_cli
from ingest import Ingest, Reply, free_port
from peekapi_otel.core._options import Options

RUN_TIMEOUT = 60.0
KEY = "proj-live-8c1d2e3f4a"
# 2024-01-02T03:04:05Z and one hour later, as segment name timestamps.
T1 = 1704164645 * 10**9
T2 = T1 + 3600 * 10**9


def spool_cli(*args: str, env: dict[str, str]) -> Result:
    return run_cli("spool", *args, env=env, timeout=RUN_TIMEOUT)


def event(n: int) -> dict[str, Any]:
    return {
        "method": "GET",
        "path": f"/items/{n}",
        "status_code": 200,
        "response_time_ms": 1.5,
        "request_size": 0,
        "response_size": 12,
        "consumer_id": None,
        "timestamp": "2024-01-02T03:04:05.000Z",
        "metadata": {"trace_id": f"{n:032x}", "span_id": f"{n:016x}"},
    }


def line(n: int) -> bytes:
    return json.dumps(event(n), separators=(",", ":")).encode() + b"\n"


@dataclass
class Spooled:
    root: Path
    directory: Path
    env: dict[str, str]
    keys: set[tuple[str, str]]
    bytes: int


def write_spool(root: Path, endpoint: str, key: str = KEY) -> Spooled:
    """Two segments: 3 valid events and a garbage line; 2 valid and a truncated last line."""
    env = {"PEEKAPI_API_KEY": key, "PEEKAPI_ENDPOINT": endpoint, "PEEKAPI_STORAGE_PATH": str(root)}
    directory = Options.from_env(env).spool_dir()
    directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.mkdir(mode=0o700)
    pid = os.getpid()
    segments = {
        f"seg-{T1:020d}-{pid}-aaaa1111.jsonl": line(1) + b"not json at all\n" + line(2) + line(3),
        f"seg-{T2:020d}-{pid}-bbbb2222.jsonl": line(4) + line(5) + line(6)[:40],
    }
    size = 0
    for name, data in segments.items():
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        size += len(data)
    keys = {(f"{n:032x}", f"{n:016x}") for n in range(1, 6)}
    return Spooled(root, directory, env, keys, size)


def summary(out: str) -> tuple[int, int, int, int, str]:
    match = re.search(
        r"segments (\d+)  events (\d+)(?: \(\+(\d+) unreadable\))?  bytes (\d+)  oldest (\S+)",
        out,
    )
    assert match, out
    segs, events, bad, size, oldest = match.groups()
    return int(segs), int(events), int(bad or 0), int(size), oldest


def segment_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("seg-"))


def test_shows_the_configured_spool(tmp_path: Path) -> None:
    spooled = write_spool(tmp_path / "root", "https://ingest.example.com/v1/events")
    result = spool_cli(env=spooled.env)
    assert result.code == 0, result.text
    assert str(spooled.directory) in result.out
    assert summary(result.out) == (2, 5, 2, spooled.bytes, "2024-01-02T03:04:05+00:00")
    assert KEY not in result.text
    # Looking changes nothing.
    assert len(segment_files(spooled.directory)) == 2


def test_path_to_the_directory_and_to_its_root(tmp_path: Path) -> None:
    spooled = write_spool(tmp_path / "root", "https://ingest.example.com/v1/events")
    expected = (2, 5, 2, spooled.bytes, "2024-01-02T03:04:05+00:00")
    for path in (spooled.directory, spooled.root):
        result = spool_cli("--path", str(path), env={})  # no key needed to look
        assert result.code == 0, result.text
        assert str(spooled.directory) in result.out
        assert summary(result.out) == expected


def test_root_with_two_spools_lists_both(tmp_path: Path) -> None:
    root = tmp_path / "root"
    first = write_spool(root, "https://a.example.com/v1/events")
    second = write_spool(root, "https://b.example.com/v1/events")
    result = spool_cli("--path", str(root), env={})
    assert result.code == 0, result.text
    assert str(first.directory) in result.out
    assert str(second.directory) in result.out
    drain = spool_cli("--path", str(root), "--drain", env=first.env)
    assert drain.code != 0
    assert "--drain needs one spool directory" in drain.err


def test_empty_and_missing_configured_spool(tmp_path: Path) -> None:
    env = {
        "PEEKAPI_API_KEY": KEY,
        "PEEKAPI_ENDPOINT": "https://ingest.example.com/v1/events",
        "PEEKAPI_STORAGE_PATH": str(tmp_path / "root"),
    }
    result = spool_cli(env=env)
    assert result.code == 0, result.text
    assert "nothing is waiting" in result.out
    assert not (tmp_path / "root").exists()
    Options.from_env(env).spool_dir().mkdir(parents=True)
    result = spool_cli(env=env)
    assert result.code == 0, result.text
    assert summary(result.out)[:4] == (0, 0, 0, 0)
    drain = spool_cli("--drain", env=env)
    assert drain.code == 0, drain.text
    assert "nothing to drain" in drain.out


def test_drain_delivers_every_valid_event_exactly_once(tmp_path: Path, ingest: Ingest) -> None:
    spooled = write_spool(tmp_path / "root", ingest.url)
    result = spool_cli("--drain", env={**spooled.env, "PEEKAPI_BATCH_SIZE": "2"})
    assert result.code == 0, result.text
    keys = ingest.keys()
    assert set(keys) == spooled.keys
    assert all(count == 1 for count in keys.values()), keys
    assert len(ingest.accepted) == 5
    assert all(r.headers["x-api-key"] == KEY for r in ingest.requests)
    assert "drained 5 of 5 events" in result.out
    assert "2 unreadable lines skipped" in result.out
    assert "0 still waiting" in result.out
    assert segment_files(spooled.directory) == []
    after = spool_cli(env=spooled.env)
    assert summary(after.out)[:4] == (0, 0, 0, 0)


def test_drain_via_path(tmp_path: Path, ingest: Ingest) -> None:
    spooled = write_spool(tmp_path / "root", ingest.url)
    env = {"PEEKAPI_API_KEY": KEY, "PEEKAPI_ENDPOINT": ingest.url}  # default storage path
    result = spool_cli("--path", str(spooled.directory), "--drain", env=env)
    assert result.code == 0, result.text
    assert set(ingest.keys()) == spooled.keys
    assert sum(ingest.keys().values()) == 5
    assert segment_files(spooled.directory) == []


def test_drain_refuses_a_spool_of_another_key(tmp_path: Path, ingest: Ingest) -> None:
    spooled = write_spool(tmp_path / "root", ingest.url, key="another-projects-key")
    env = {"PEEKAPI_API_KEY": KEY, "PEEKAPI_ENDPOINT": ingest.url}
    result = spool_cli("--path", str(spooled.directory), "--drain", env=env)
    assert result.code == 1, result.text
    assert "another endpoint or API key" in result.err
    assert ingest.requests == []
    assert len(segment_files(spooled.directory)) == 2


def test_a_fifo_named_like_a_segment_does_not_hang_the_command(
    tmp_path: Path, ingest: Ingest
) -> None:
    spooled = write_spool(tmp_path / "root", ingest.url)
    os.mkfifo(spooled.directory / f"seg-{T1 - 1:020d}-1-fifo0000.jsonl", 0o600)
    shown = spool_cli(env=spooled.env)  # a blocking open would run into RUN_TIMEOUT
    assert shown.code == 0, shown.text
    assert summary(shown.out)[:3] == (2, 5, 2)
    drained = spool_cli("--drain", env=spooled.env)
    assert drained.code == 0, drained.text
    assert ingest.keys() == dict.fromkeys(spooled.keys, 1)


@pytest.mark.parametrize("old", ["key", "endpoint"])
def test_drain_to_current_sends_events_kept_for_an_old_key_or_endpoint(
    tmp_path: Path, ingest: Ingest, old: str
) -> None:
    """After a 401/403 or 3xx pause the user fixes the key or endpoint; what the pause kept
    sits in the old spool directory and is sent with the new settings."""
    root = tmp_path / "root"
    if old == "key":
        spooled = write_spool(root, ingest.url, key="proj-revoked-0000")
    else:
        spooled = write_spool(root, "http://127.0.0.1:9/old/v1/events")
    env = {
        "PEEKAPI_API_KEY": KEY,
        "PEEKAPI_ENDPOINT": ingest.url,
        "PEEKAPI_STORAGE_PATH": str(root),
    }
    refused = spool_cli("--path", str(spooled.directory), "--drain", env=env)
    assert refused.code == 1, refused.text
    assert "--to-current" in refused.err
    result = spool_cli("--path", str(spooled.directory), "--drain", "--to-current", env=env)
    assert result.code == 0, result.text
    assert "moved 5 events" in result.out
    assert ingest.keys() == dict.fromkeys(spooled.keys, 1)
    assert all(r.headers["x-api-key"] == KEY for r in ingest.requests)
    assert segment_files(spooled.directory) == []
    assert segment_files(Options.from_env(env).spool_dir()) == []


def test_to_current_needs_drain(tmp_path: Path, ingest: Ingest) -> None:
    spooled = write_spool(tmp_path / "root", ingest.url)
    result = spool_cli("--path", str(spooled.directory), "--to-current", env=spooled.env)
    assert result.code == 2, result.text
    assert ingest.requests == []


@pytest.mark.parametrize("status", [401, 403])
def test_drain_with_rejected_key_keeps_events(tmp_path: Path, ingest: Ingest, status: int) -> None:
    ingest.default = Reply(status=status, body=b'{"error":"invalid api key"}')
    spooled = write_spool(tmp_path / "root", ingest.url)
    before = {p.name: p.read_bytes() for p in spooled.directory.iterdir()}
    started = time.monotonic()
    result = spool_cli("--drain", env=spooled.env)
    assert result.code == 1, result.text
    assert time.monotonic() - started < 30
    assert "rejects this API key" in result.err
    assert "5 events stay on disk" in result.err
    assert KEY not in result.text
    assert ingest.accepted == []
    assert {p.name: p.read_bytes() for p in spooled.directory.iterdir()} == before


def test_drain_with_ingest_down_keeps_events(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/events"
    spooled = write_spool(tmp_path / "root", url)
    result = spool_cli("--drain", env={**spooled.env, "PEEKAPI_TIMEOUT": "2"})
    assert result.code == 1, result.text
    assert "does not answer" in result.err
    assert summary(spool_cli(env=spooled.env).out)[:3] == (2, 5, 2)


def test_drain_without_api_key(tmp_path: Path) -> None:
    spooled = write_spool(tmp_path / "root", "https://ingest.example.com/v1/events")
    env = {**spooled.env, "PEEKAPI_API_KEY": ""}
    for args in (("--drain",), ("--path", str(spooled.directory), "--drain")):
        result = spool_cli(*args, env=env)
        assert result.code == 1, result.text
        assert "cannot drain: no API key" in result.err
        assert "PEEKAPI_API_KEY" in result.err
    assert len(segment_files(spooled.directory)) == 2


def test_nonexistent_path(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    for args in (("--path", str(missing)), ("--path", str(missing), "--drain")):
        result = spool_cli(*args, env={"PEEKAPI_API_KEY": KEY})
        assert result.code == 1, result.text
        assert f"{missing} is not a directory" in result.err
    assert not missing.exists()


def test_path_to_a_file(tmp_path: Path) -> None:
    file = tmp_path / "a-file"
    file.write_text("x")
    result = spool_cli("--path", str(file), env={})
    assert result.code == 1, result.text
    assert "is not a directory" in result.err
