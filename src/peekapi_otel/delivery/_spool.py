"""JSONL disk spool: events that could not be sent yet survive outages, restarts and crashes.

Layout of one spool directory (one per endpoint and API key, mode 0700)::

    seg-<time_ns>-<pid>-<token>.tmp            being written; the writer holds flock
    seg-<time_ns>-<pid>-<token>.jsonl          closed (fsynced, renamed), ready to send
    seg-<time_ns>-<pid>-<token>.<off>.sending  claimed; the claimer holds flock and
                                               renames it after every acknowledged batch,
                                               so <off> is the first unsent byte

Each process writes its own segments. A claimer locks a file *then* checks the path still
names it (lock-then-verify), so two processes never send one segment. A lock held by a
dead process is released by the kernel, which is how a crashed writer's or claimer's
segment is taken back; a restarted claimer resumes at <off>, so a crash can resend at most
the batch that was in flight.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import logging
import os
import secrets
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from peekapi_otel.core._stats import STATS
from peekapi_otel.delivery._claim import Claim
from peekapi_otel.delivery._segments import (
    NotASegment,
    SpoolUnavailable,
    created_at,
    evict,
    lock_unheld,
    open_segment,
    parse_lines,
    parse_name,
    secure_dirs,
    write_all,
)

_logger = logging.getLogger(__name__)

SEGMENT_BYTES: Final = 1 << 20
#: Errors of a claim's rename that no retry in this process will get past.
_STUCK: Final = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO})


@dataclasses.dataclass(frozen=True)
class SpoolInfo:
    segments: int
    events: int  # event lines still to send
    bytes: int
    oldest: float | None  # epoch seconds of the oldest segment
    corrupt: int = 0  # lines that will be skipped (not an event, or cut short)


class Spool:
    """Writer and claimer for one spool directory. Thread-safe; never raises on I/O."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._segment_cap = max(4096, min(SEGMENT_BYTES, max_bytes // 8))
        self._lock = threading.Lock()
        self._ready = False
        self.error: str | None = None
        self._fd = -1
        self._tmp: Path | None = None
        self._written = 0
        self._last_write = 0.0
        self._approx_total: int | None = None
        self._claims: set[Claim] = set()
        self._reported: set[str] = set()  # segment names whose problem was counted

    # --- setup ---------------------------------------------------------------------

    def _ensure(self, *, recheck: bool = False) -> bool:
        """Create or check the directories; ``recheck`` checks them again (each time a
        segment is opened or claimed: they may have been replaced since)."""
        if self._ready and not recheck:
            return True
        if self.error is not None:
            return False
        try:
            secure_dirs(self.directory)
        except (SpoolUnavailable, OSError) as exc:
            self.error = str(exc)
            _logger.error(
                "peekapi-otel: the disk spool is disabled: %s. Events that cannot be sent "
                "at once will be dropped and counted",
                exc,
            )
            return False
        self._ready = True
        return True

    @property
    def usable(self) -> bool:
        with self._lock:
            return self._ensure()

    # --- writing -------------------------------------------------------------------

    def write(self, lines: Sequence[bytes]) -> int:
        """Append events; returns how many were written. Drops are counted here."""
        if not lines:
            return 0
        with self._lock:
            if not self._ensure():
                STATS.drop("spool_error", len(lines), self.error or "")
                return 0
            data = b"".join(line + b"\n" for line in lines)
            try:
                self._make_room(len(data))
                if self._fd < 0 or self._written >= self._segment_cap:
                    self._close_locked()
                    self._open_locked()
                try:
                    write_all(self._fd, data)
                except OSError:
                    # Cut a partial write off, so no half line or half batch is left
                    # behind: the whole batch is counted as dropped, once.
                    os.ftruncate(self._fd, self._written)
                    raise
            except OSError as exc:
                full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
                reason = "spool_full" if full else "spool_error"
                STATS.drop(reason, len(lines), f"{self.directory}: {exc.strerror or exc}")
                self._abandon_locked()
                return 0
            except _SpoolFull:
                STATS.drop("spool_full", len(lines), f"spool over {self.max_bytes} bytes")
                return 0
            except _SpoolDisabled:
                STATS.drop("spool_error", len(lines), self.error or "")
                return 0
            self._written += len(data)
            self._last_write = time.monotonic()
            if self._approx_total is not None:
                self._approx_total += len(data)
            return len(lines)

    def _open_locked(self) -> None:
        if not self._ensure(recheck=True):
            raise _SpoolDisabled
        name = f"seg-{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.tmp"
        path = self.directory / name
        fd = open_segment(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        self._fd, self._tmp, self._written = fd, path, 0

    def _close_locked(self) -> None:
        fd, tmp = self._fd, self._tmp
        if fd < 0 or tmp is None:
            return
        self._fd, self._tmp = -1, None
        try:
            if self._written:
                os.fsync(fd)
                os.rename(tmp, tmp.with_suffix(".jsonl"))
            else:
                os.unlink(tmp)
        except OSError as exc:
            # The lines stay in the .tmp; once our lock is gone (exit) it is taken over.
            STATS.once(
                "spool-close",
                logging.WARNING,
                "peekapi-otel: could not close spool segment %s: %s",
                tmp,
                exc,
            )
        finally:
            try:
                os.close(fd)
            except OSError:
                pass

    def _abandon_locked(self) -> None:
        """After a write error keep what was written: the segment becomes ready as is."""
        self._close_locked()

    def close_segment(self, idle_for: float = 0.0) -> None:
        """Make the segment being written claimable (if idle for ``idle_for`` seconds)."""
        with self._lock:
            if self._fd >= 0 and time.monotonic() - self._last_write >= idle_for:
                self._close_locked()

    def _make_room(self, incoming: int) -> None:
        total = self._approx_total
        if total is None or total + incoming > self.max_bytes:
            total = self._scan_total()
        if total + incoming <= self.max_bytes:
            self._approx_total = total
            return
        if self._fd >= 0:
            self._close_locked()
        total = _evict_oldest(self.directory, total, incoming, self.max_bytes)
        self._approx_total = total
        if total + incoming > self.max_bytes:
            raise _SpoolFull

    def _scan_total(self) -> int:
        total = 0
        for name in _sorted_names(self.directory):
            try:
                total += os.lstat(self.directory / name).st_size
            except OSError:
                pass
        return total

    # --- claiming ------------------------------------------------------------------

    def claim(self) -> Claim | None:
        """Lock the oldest segment nobody is working on, or return ``None``."""
        with self._lock:
            if not self._ensure(recheck=True):
                return None
            own = self._tmp.name if self._tmp is not None else None
            for name in _sorted_names(self.directory):
                parsed = parse_name(name)
                if parsed is None or name == own:
                    continue
                claim = self._try_claim(name, *parsed)
                if claim is not None:
                    return claim
        return None

    def _try_claim(self, name: str, base: str, kind: str, offset: int) -> Claim | None:
        path = self.directory / name
        try:
            locked = lock_unheld(path, kind)
        except NotASegment as exc:
            self._report_once(name, "corrupt", 1, f"{exc}; skipped")
            return None
        if locked is None:
            return None
        fd = locked[0]
        new = f"{base}.{offset}.sending"
        try:
            if new != name:
                os.rename(path, self.directory / new)
            claim = Claim(self.directory, base, fd, new, offset, self._claims.discard)
        except OSError as exc:
            if exc.errno in _STUCK:
                # A read-only remount (EROFS) or a changed mode: the events stay on disk,
                # but this process cannot send them without recording its progress.
                self._report_once(
                    name,
                    "spool_error",
                    _events_in(fd, offset),
                    f"cannot claim spool segment {path}: {exc.strerror or exc}; it stays "
                    "on disk (is the disk read-only?)",
                )
            try:
                os.close(fd)
            except OSError:
                pass
            return None
        self._claims.add(claim)
        if not claim.lines:
            claim.finish()
            return None
        return claim

    def _report_once(self, name: str, reason: str, events: int, detail: str) -> None:
        """Count a segment that cannot be claimed, once per segment and process."""
        if name in self._reported:
            return
        self._reported.add(name)
        STATS.drop(reason, events, detail)
        STATS.once(f"spool-claim-{reason}", logging.WARNING, "peekapi-otel: %s", detail)

    # --- inspection and fork -------------------------------------------------------

    def info(self) -> SpoolInfo:
        """What the directory holds, read the way a claim reads it."""
        return _read_info(self.directory)

    def after_fork_in_child(self) -> None:
        # The parent keeps writing its segment and sending its claims; the child must
        # not, and must not keep their locks alive either: flock belongs to the open file,
        # which our inherited copies share. Closing our copies leaves the parent's locks
        # in place and lets them go when the parent closes its own.
        fds = [self._fd] + [claim.fd for claim in self._claims]
        for fd in fds:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._claims = set()
        self._fd, self._tmp, self._written = -1, None, 0
        self._lock = threading.Lock()
        self._approx_total = None


class _SpoolFull(Exception):
    pass


class _SpoolDisabled(Exception):
    pass


def _events_in(fd: int, offset: int) -> int:
    try:
        size = os.fstat(fd).st_size
        return len(parse_lines(os.pread(fd, max(size - offset, 0), offset))[0])
    except OSError:
        return 0


def _sorted_names(directory: Path) -> list[str]:
    try:
        names = [n for n in os.listdir(directory) if n.startswith("seg-")]
    except OSError:
        return []
    names.sort()
    return names


def _evict_oldest(directory: Path, total: int, incoming: int, max_bytes: int) -> int:
    """Remove the oldest segments nobody holds until ``incoming`` more bytes fit in
    ``max_bytes`` (ready segments, and those of dead writers and claimers: their lock is
    gone); returns the bytes left."""
    for name in _sorted_names(directory):
        if total + incoming <= max_bytes:
            break
        parsed = parse_name(name)
        if parsed is None:
            continue
        evicted = evict(directory / name, parsed[1], parsed[2])
        if evicted is None:
            continue
        size, events = evicted
        STATS.drop("evicted", events, f"spool over {max_bytes} bytes, oldest removed")
        total -= size
    return total


#: Scans of a directory before ``_read_info`` settles for one in which a segment vanished.
_INFO_SCANS: Final = 5


def _read_info(directory: Path) -> SpoolInfo:
    """What ``directory`` holds. A claimer renames a segment when it claims it and after
    every acknowledged batch, so a name listed a moment ago may be gone: the scan starts
    again rather than report those events as sent."""
    info = SpoolInfo(0, 0, 0, None, 0)
    for _ in range(_INFO_SCANS):
        info, complete = _scan_info(directory)
        if complete:
            break
    return info


def _scan_info(directory: Path) -> tuple[SpoolInfo, bool]:
    """One pass over ``directory``; ``False`` when a listed segment vanished meanwhile."""
    segments = events = corrupt = size = 0
    oldest: float | None = None
    complete = True
    for name in _sorted_names(directory):
        parsed = parse_name(name)
        if parsed is None:
            continue
        try:
            fd = open_segment(directory / name, os.O_RDONLY)
        except FileNotFoundError:
            complete = False
            continue
        except (OSError, NotASegment):
            continue
        try:
            data = os.pread(fd, os.fstat(fd).st_size, 0)
        except OSError:
            continue
        finally:
            os.close(fd)
        segments += 1
        size += len(data)
        lines, _ends, bad = parse_lines(data[parsed[2] :])
        events += len(lines)
        corrupt += len(bad)
        created = created_at(parsed[0])
        oldest = created if oldest is None else min(oldest, created)
    return SpoolInfo(segments, events, size, oldest, corrupt), complete


def move_segments(source: Spool, target: Spool) -> int:
    """Move every segment of ``source`` that nobody else holds into ``target``; returns
    the events moved. ``peekapi-otel spool --drain --to-current`` sends events spooled for
    an old endpoint or key with the current ones this way."""
    moved = 0
    while True:
        claim = source.claim()
        if claim is None:
            break
        lines = claim.batch(claim.remaining)
        if target.write(lines) < len(lines):
            claim.release()  # the rest stays where it is; the target counted why
            break
        claim.ack(len(lines))
        moved += len(lines)
    target.close_segment()
    return moved
