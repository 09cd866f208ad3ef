"""The disk spool: limits, broken disks, corrupt segments, and hardening (SPEC §6)."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from delivery.support import dropped, fast_policy, key_of, make_span, options, wait_until
from ingest import Ingest  # type: ignore[import-not-found]
from peekapi_otel.core._encoder import EventEncoder
from peekapi_otel.core._options import Options
from peekapi_otel.core._record import record_of_span
from peekapi_otel.core._stats import stats
from peekapi_otel.delivery._pipeline import Pipeline
from peekapi_otel.delivery._spool import Spool

DOWN = "http://127.0.0.1:9/v1/events"  # nothing listens on port 9: connection refused


def line_of(span: ReadableSpan) -> bytes:
    line = EventEncoder().encode(record_of_span(span))
    assert line is not None
    return line


def test_full_spool_evicts_oldest_and_counts(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=40_000)
    batches = [[line_of(make_span()) for _ in range(20)] for _ in range(30)]
    for batch in batches:
        assert spool.write(batch) == 20
    spool.close_segment()
    info = spool.info()
    assert info.bytes <= 40_000
    evicted = stats()["dropped"]["evicted"]
    assert evicted > 0
    assert info.events + evicted == 600
    # The newest events survived.
    kept = b"".join((spool.directory / n).read_bytes() for n in os.listdir(spool.directory))
    assert all(line in kept for line in batches[-1])
    assert batches[0][0] not in kept


def test_info_counts_a_segment_renamed_while_it_reads(tmp_path: Path) -> None:
    """A claimer renames a segment when it claims it and after each acknowledged batch; a
    reading taken meanwhile must not report those events as sent (``spool --drain`` stops
    on a reading of 0)."""
    spool = Spool(tmp_path / "spool", max_bytes=1_000_000)
    assert spool.write([line_of(make_span()) for _ in range(5)]) == 5
    spool.close_segment()
    (ready,) = os.listdir(spool.directory)
    names = [spool.directory / ready, spool.directory / ready.replace(".jsonl", ".0.sending")]
    flips = 0

    def rename_back_and_forth() -> None:
        # As often as a claimer can: once per acknowledged batch, here once a millisecond.
        nonlocal flips
        while flips < 300:
            os.rename(names[flips % 2], names[(flips + 1) % 2])
            flips += 1
            time.sleep(0.001)

    renamer = threading.Thread(target=rename_back_and_forth, daemon=True)
    renamer.start()
    readings: list[int] = []
    deadline = time.monotonic() + 30
    while renamer.is_alive() and time.monotonic() < deadline and len(readings) < 1_000_000:
        readings.append(spool.info().events)
    renamer.join(timeout=10)
    assert not renamer.is_alive()
    assert flips == 300
    assert readings == [5] * len(readings)


def _mount_tmpfs(path: Path, *opts: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    args = [
        "mount",
        "-t",
        "tmpfs",
        "-o",
        ",".join(["size=256k", "mode=700", *opts]),
        "tmpfs",
        str(path),
    ]
    if os.geteuid() != 0 or subprocess.run(args, capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.parametrize("fault", ["read-only", "disk-full"])
def test_unwritable_spool_counts_drops_warns_once(
    tmp_path: Path, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    mount = tmp_path / "mnt"
    _mount_tmpfs(mount)
    try:
        opts = options(DOWN, mount, timeout=0.2)
        opts.spool_dir().mkdir(mode=0o700)
        if fault == "read-only":
            subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        else:
            with open(mount / "filler", "wb") as fh:  # fill the disk
                try:
                    while True:
                        fh.write(b"\0" * 65536)
                except OSError:
                    pass
        caplog.set_level(logging.WARNING, logger="peekapi_otel")
        pipeline = Pipeline(opts, policy=fast_policy(attempts=1))
        try:
            for _ in range(300):
                pipeline.submit(record_of_span(make_span()))  # never raises into the app
            assert pipeline.force_flush(5)
        finally:
            pipeline.shutdown()
        reason = "spool_error" if fault == "read-only" else "spool_full"
        s = stats()
        assert dropped(s) == {reason: 300}
        assert s["seen"] == 300
        assert s["spooled"] == 0
        warnings = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        # One warning at the first drop; the rest in one summary at shutdown.
        assert len(warnings) == 2
        assert f"(in total: {{'{reason}': 300}})" in warnings[1]
    finally:
        _umount(mount)


def test_corrupt_and_truncated_lines_are_skipped_and_counted(
    ingest: Ingest, tmp_path: Path
) -> None:
    opts = options(ingest.url, tmp_path)
    directory = opts.spool_dir()
    directory.mkdir(parents=True, mode=0o700)
    spans = [make_span() for _ in range(250)]
    lines = [line_of(s) for s in spans]
    body = b"\n".join(lines[:120]) + b"\n\x00garbage{not json\n" + b"\n".join(lines[120:])
    body += b'\n{"method":"GET","pa'  # cut short by a crash
    (directory / "seg-00000000000000000001-1-abcd.jsonl").write_bytes(body)
    pipeline = Pipeline(opts, policy=fast_policy())
    try:
        assert wait_until(lambda: len(ingest.keys()) == 250, 10)
        assert wait_until(lambda: not os.listdir(directory), 5)
    finally:
        pipeline.shutdown()
    assert ingest.keys() == {key_of(s): 1 for s in spans}
    s = stats()
    assert dropped(s) == {"corrupt": 2}
    assert s["recovered"] == 250


def test_spool_files_are_private(tmp_path: Path) -> None:
    opts = options(DOWN, tmp_path / "root")
    spool = Spool(opts.spool_dir(), 1 << 20)
    assert spool.write([line_of(make_span())]) == 1
    spool.close_segment()
    assert stat.S_IMODE(os.stat(spool.directory).st_mode) == 0o700
    files = os.listdir(spool.directory)
    assert files
    assert all(stat.S_IMODE(os.stat(spool.directory / f).st_mode) == 0o600 for f in files)


def test_symlink_at_spool_path_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    opts = options(DOWN, tmp_path / "root")
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    opts.spool_dir().parent.mkdir(parents=True)
    opts.spool_dir().symlink_to(target)
    caplog.set_level(logging.ERROR, logger="peekapi_otel")
    spool = Spool(opts.spool_dir(), 1 << 20)
    assert not spool.usable
    assert spool.write([line_of(make_span())]) == 0
    assert spool.error is not None
    assert "symlink" in spool.error
    assert "refusing" in caplog.text
    assert os.listdir(target) == []
    assert dropped(stats()) == {"spool_error": 1}


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    opts = options(DOWN, tmp_path / "root")
    opts.spool_dir().mkdir(parents=True, mode=0o700)
    os.chown(opts.spool_dir(), 65534, 65534)
    spool = Spool(opts.spool_dir(), 1 << 20)
    assert not spool.usable
    assert spool.error is not None
    assert "owned by uid 65534" in spool.error


def test_keys_and_endpoints_never_share_a_spool(tmp_path: Path) -> None:
    def spool_dir(key: str, endpoint: str) -> Path:
        return Options.from_env(
            {}, api_key=key, endpoint=endpoint, storage_path=str(tmp_path)
        ).spool_dir()

    a = spool_dir("key-a", "http://127.0.0.1:8000/v1/events")
    b = spool_dir("key-b", "http://127.0.0.1:8000/v1/events")
    c = spool_dir("key-a", "http://127.0.0.1:8001/v1/events")
    assert len({a, b, c}) == 3
    assert a == spool_dir("key-a", "http://127.0.0.1:8000/v1/events")
    assert "key-a" not in str(a)


def test_force_flush_returns_once_everything_is_on_disk(tmp_path: Path) -> None:
    # Default retry policy (1 s doubling): force_flush must not wait for the backoff.
    pipeline = Pipeline(options(DOWN, tmp_path, flush_interval=5.0))
    try:
        spans = [make_span() for _ in range(250)]
        for span in spans:
            pipeline.submit(record_of_span(span))
        import time

        start = time.monotonic()
        assert pipeline.force_flush(2.0)
        assert time.monotonic() - start < 2.5
        s = stats()
        assert s["seen"] == 250
        assert s["spooled"] == 250
        assert s["sent"] == 0
        assert dropped(s) == {}
        assert pipeline.spool.info().events == 250
    finally:
        pipeline.shutdown()
