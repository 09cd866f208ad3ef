"""Spool defects found under attack and faults: a storage root another user prepared, a
FIFO named like a segment, a line of valid JSON that is no event, a read-only remount."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from delivery.support import (
    Scripted,
    dropped,
    event_lines,
    fast_policy,
    make_span,
    options,
    wait_until,
)
from ingest import Ingest  # type: ignore[import-not-found]
from peekapi_otel.core._options import Options
from peekapi_otel.core._record import record_of_span
from peekapi_otel.core._stats import stats
from peekapi_otel.delivery._pipeline import Pipeline
from peekapi_otel.delivery._spool import Spool
from peekapi_otel.delivery._transport import SendResult

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
SEGMENT = "seg-00000000000000000001-1-abcd.jsonl"
DOWN = "http://127.0.0.1:9/v1/events"
lines = event_lines


def spool_in(root: Path) -> Spool:
    return Spool(options(DOWN, root).spool_dir(), 1 << 20)


# --- the storage root ---------------------------------------------------------------


@ROOT_ONLY
def test_a_root_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "peekapi-otel-1000"
    root.mkdir(mode=0o700)
    os.chown(root, 65534, 65534)  # another local user created it first
    spool = spool_in(root)
    assert spool.write(lines(3)) == 0
    assert spool.error is not None
    assert f"{root} is owned by uid 65534" in spool.error
    assert not any(root.iterdir())
    assert dropped(stats()) == {"spool_error": 3}


def test_a_root_writable_by_others_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "peekapi-otel-1000"
    root.mkdir()
    os.chmod(root, 0o777)
    spool = spool_in(root)
    assert spool.write(lines(1)) == 0
    assert spool.error is not None
    assert "writable by other users" in spool.error


def test_a_root_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    root = tmp_path / "peekapi-otel-1000"
    root.symlink_to(elsewhere)
    spool = spool_in(root)
    assert spool.write(lines(1)) == 0
    assert spool.error is not None
    assert "symlink" in spool.error
    assert not any(elsewhere.iterdir())


@ROOT_ONLY
def test_the_root_is_checked_again_each_time_a_segment_is_opened(tmp_path: Path) -> None:
    root = tmp_path / "peekapi-otel-1000"
    spool = spool_in(root)
    assert spool.write(lines(2)) == 2
    spool.close_segment()
    # Another user takes the path over while the process runs: planted events are not
    # claimed and no new segment is written there.
    os.chown(root, 65534, 65534)
    assert spool.claim() is None
    assert spool.write(lines(2)) == 0
    assert dropped(stats()) == {"spool_error": 2}


@ROOT_ONLY
def test_planted_segments_of_another_user_are_not_sent(tmp_path: Path) -> None:
    spool = spool_in(tmp_path / "root")
    assert spool.usable
    planted = spool.directory / SEGMENT
    planted.write_bytes(b"".join(line + b"\n" for line in lines(2)))
    os.chown(planted, 65534, 65534)
    assert spool.claim() is None
    assert spool.info().events == 0


# --- non-regular files ----------------------------------------------------------------


def test_a_fifo_named_like_a_segment_does_not_block_the_claim(tmp_path: Path) -> None:
    spool = spool_in(tmp_path)
    assert spool.usable
    os.mkfifo(spool.directory / SEGMENT, 0o600)  # sorts first: claimed first
    good = lines(3)
    assert spool.write(good) == 3
    spool.close_segment()
    result: list[object] = []
    claimer = threading.Thread(target=lambda: result.append(spool.claim()), daemon=True)
    claimer.start()
    claimer.join(10)
    if claimer.is_alive():  # blocked in open(): a writer lets it go, then fail
        fd = os.open(spool.directory / SEGMENT, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        claimer.join(10)
        pytest.fail("the claim blocked on the FIFO")
    claim = result[0]
    assert claim is not None
    assert claim.lines == good  # type: ignore[attr-defined]
    claim.release()  # type: ignore[attr-defined]
    assert dropped(stats()) == {"corrupt": 1}  # counted once, then skipped
    assert spool.claim() is not None
    assert dropped(stats()) == {"corrupt": 1}
    assert spool.info().events == 3  # inspection does not block either


# --- lines that are JSON but no event -------------------------------------------------

REQUIRED = (
    "method",
    "path",
    "status_code",
    "response_time_ms",
    "request_size",
    "response_size",
    "timestamp",
)


def strict_ingest(events: list[dict[str, object]]) -> SendResult:
    """As ``peekapi-otel serve`` and the public ingest do: one bad event refuses all."""
    if any(not all(name in e for name in REQUIRED) for e in events):
        return SendResult(status=400, excerpt='{"error":"event 50: missing field method"}')
    return SendResult(status=200)


def test_a_line_of_json_with_the_wrong_shape_is_corrupt_and_the_rest_is_sent(
    tmp_path: Path,
) -> None:
    opts = options(DOWN, tmp_path)
    directory = opts.spool_dir()
    directory.mkdir(parents=True, mode=0o700)
    good = lines(99)
    body = b"\n".join(good[:50]) + b'\n{"foo": 1}\n' + b"\n".join(good[50:]) + b"\n"
    (directory / SEGMENT).write_bytes(body)
    transport = Scripted(responder=strict_ingest)
    pipeline = Pipeline(opts, transport=transport, policy=fast_policy())
    try:
        assert wait_until(lambda: sum(transport.delivered().values()) == 99, 10)
        assert wait_until(lambda: not os.listdir(directory), 5)
    finally:
        pipeline.shutdown()
    s = stats()
    assert dropped(s) == {"corrupt": 1}
    assert s["recovered"] == 99


@pytest.mark.parametrize(
    "line",
    [
        b'{"foo": 1}',
        b"[1, 2]",
        b'{"method": "GET", "path": "/", "status_code": "200", "response_time_ms": 1.0,'
        b' "request_size": 0, "response_size": 0, "consumer_id": null, "metadata": null,'
        b' "timestamp": "2026-01-01T00:00:00+00:00"}',
        b'{"method": "GET", "path": "/", "status_code": 200, "response_time_ms": 1.0,'
        b' "request_size": -1, "response_size": 0, "consumer_id": null, "metadata": null,'
        b' "timestamp": "2026-01-01T00:00:00+00:00"}',
    ],
    ids=["no-event-fields", "array", "status-as-string", "negative-size"],
)
def test_the_spool_reads_only_events(tmp_path: Path, line: bytes) -> None:
    spool = spool_in(tmp_path)
    assert spool.usable
    good = lines(1)
    (spool.directory / SEGMENT).write_bytes(line + b"\n" + good[0] + b"\n")
    info = spool.info()
    assert (info.events, info.corrupt) == (1, 1)
    claim = spool.claim()
    assert claim is not None
    assert claim.lines == good


# --- a read-only remount -----------------------------------------------------------------


def _mount_tmpfs(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    args = ["mount", "-t", "tmpfs", "-o", "size=256k,mode=700", "tmpfs", str(path)]
    if os.geteuid() != 0 or subprocess.run(args, capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")


def test_segments_on_a_read_only_remount_are_counted_and_warned_once(
    ingest: Ingest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mount = tmp_path / "mnt"
    _mount_tmpfs(mount)
    try:
        opts = options(ingest.url, mount)
        directory = opts.spool_dir()
        directory.mkdir(mode=0o700)
        (directory / SEGMENT).write_bytes(b"".join(line + b"\n" for line in lines(7)))
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        caplog.set_level(logging.WARNING, logger="peekapi_otel")
        pipeline = Pipeline(opts, policy=fast_policy(), recovery_interval=0.1)
        try:
            assert wait_until(lambda: dropped(stats()) == {"spool_error": 7}, 10), stats()
            assert wait_until(lambda: "read-only" in caplog.text, 5)
            # Further drains find the same segment: neither counted nor warned again.
            claims = ingest.requests[:]
            wait_until(lambda: False, 0.5)
            assert dropped(stats()) == {"spool_error": 7}
            assert ingest.requests == claims == []
        finally:
            pipeline.shutdown()
        assert caplog.text.count("cannot claim spool segment") == 2  # drop + once
        assert os.listdir(directory) == [SEGMENT]  # still on disk for a later process
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_claim_rename_failing_with_erofs_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same at the filesystem edge, where no mount is to be had."""
    spool = spool_in(tmp_path)
    assert spool.usable
    (spool.directory / SEGMENT).write_bytes(b"".join(line + b"\n" for line in lines(4)))
    real_rename = os.rename

    def read_only(src: object, dst: object) -> None:
        if str(src).startswith(str(spool.directory)):
            raise OSError(errno.EROFS, "Read-only file system", str(src))
        real_rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", read_only)
    assert spool.claim() is None
    assert spool.claim() is None
    assert dropped(stats()) == {"spool_error": 4}


@ROOT_ONLY
def test_planted_events_in_a_fallback_root_of_another_user_are_never_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No writable home and no XDG_CACHE_HOME: the root is ``$TMPDIR/peekapi-otel-<uid>``.
    Another local user (uid 65534 here) created it first; once the victim's spool
    directory appears in it, they swap it for their own, filled with events."""
    monkeypatch.setenv("HOME", str(tmp_path / "no-such-home"))  # not writable
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    opts = Options.from_env({}, api_key="victim-key", endpoint=DOWN, flush_interval=0.1)
    root = tmp_path / f"peekapi-otel-{os.getuid()}"
    leaf = opts.spool_dir()
    assert leaf.parent == root
    root.mkdir()
    os.chmod(root, 0o777)
    os.chown(root, 65534, 65534)
    transport = Scripted()
    pipeline = Pipeline(opts, transport=transport, policy=fast_policy(), recovery_interval=0.2)
    try:
        pipeline.submit(record_of_span(make_span()))
        assert pipeline.force_flush(5)
        if leaf.exists():  # the victim made its directory in the attacker's root
            os.rename(leaf, tmp_path / "moved-away")
        leaf.mkdir()
        planted = leaf / SEGMENT
        planted.write_bytes(b"".join(line + b"\n" for line in lines(5)))
        for path in (leaf, planted):
            os.chmod(path, 0o777)
            os.chown(path, 65534, 65534)
        wait_until(lambda: sum(transport.delivered().values()) > 1, 2)  # drains every 0.2 s
    finally:
        pipeline.shutdown()
    assert sum(transport.delivered().values()) == 1  # the victim's own event only
    assert pipeline.spool.error is not None
    assert f"{root} is owned by uid 65534" in pipeline.spool.error
    assert planted.exists()
