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
import json
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from peekapi_otel.core._stats import STATS

_logger = logging.getLogger(__name__)

SEGMENT_BYTES: Final = 1 << 20
# A .tmp whose lock is free is only taken over when untouched this long: the writer
# creates the file and locks it a moment later.
_STALE_TMP_SECONDS: Final = 2.0
_OPEN_FLAGS: Final = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class SpoolUnavailable(Exception):
    """The spool directory cannot be used (symlink, foreign owner, not writable...)."""


@dataclasses.dataclass(frozen=True)
class SpoolInfo:
    segments: int
    events: int
    bytes: int
    oldest: float | None  # epoch seconds of the oldest segment


def _parse(name: str) -> tuple[str, str, int] | None:
    """``(base, kind, offset)`` for a segment file name, else ``None``."""
    if not name.startswith("seg-"):
        return None
    if name.endswith(".tmp"):
        return name[:-4], "tmp", 0
    if name.endswith(".jsonl"):
        return name[:-6], "ready", 0
    if name.endswith(".sending"):
        base, _, off = name[:-8].rpartition(".")
        if base and off.isdigit():
            return base, "sending", int(off)
    return None


def _created(base: str) -> float:
    try:
        return int(base.split("-")[1]) / 1e9
    except (IndexError, ValueError):
        return 0.0


def _secure_dir(path: Path) -> None:
    """Create ``path`` (0700) or check an existing one: no symlink, owned by us.

    The parent (the storage root) is created if missing; the directory itself must be a
    real directory owned by this user, or another user could read or plant events.
    """
    try:
        os.makedirs(path.parent, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise SpoolUnavailable(f"cannot create spool root {path.parent}: {exc}") from None
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise SpoolUnavailable(f"cannot create spool directory {path}: {exc}") from None
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise SpoolUnavailable(f"spool directory {path} is a symlink; refusing to use it")
    if not stat.S_ISDIR(st.st_mode):
        raise SpoolUnavailable(f"spool path {path} is not a directory; refusing to use it")
    if st.st_uid != os.geteuid():
        raise SpoolUnavailable(
            f"spool directory {path} is owned by uid {st.st_uid}, not by this user "
            f"(uid {os.geteuid()}); refusing to use it"
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)


def parse_lines(data: bytes) -> tuple[list[bytes], list[int], list[int]]:
    """Split segment bytes into valid event lines.

    Returns the lines, the byte offset just past each line, and the offset just past each
    corrupt line (not a JSON object, or a last line cut short by a crash).
    """
    lines: list[bytes] = []
    ends: list[int] = []
    bad: list[int] = []
    pos = 0
    size = len(data)
    while pos < size:
        nl = data.find(b"\n", pos)
        if nl < 0:
            bad.append(size)  # truncated last line
            break
        line = data[pos:nl]
        pos = nl + 1
        if not line.strip():
            continue
        try:
            ok = isinstance(json.loads(line), dict)
        except ValueError:
            ok = False
        if ok:
            lines.append(line)
            ends.append(pos)
        else:
            bad.append(pos)
    return lines, ends, bad


class Claim:
    """A segment this process locked for sending.

    Corrupt lines are counted as the recorded offset passes them, so a segment claimed
    again after a failed drain does not count them twice.
    """

    def __init__(
        self, spool: Spool, directory: Path, base: str, fd: int, name: str, offset: int
    ) -> None:
        self._spool = spool
        self._dir = directory
        self._base = base
        self._fd = fd
        self._name = name
        self.offset = offset
        size = os.fstat(fd).st_size
        data = os.pread(fd, max(size - offset, 0), offset) if size > offset else b""
        self.lines, ends, bad = parse_lines(data)
        self._ends = [offset + e for e in ends]
        self._bad = [offset + e for e in bad]
        self._next = 0

    @property
    def remaining(self) -> int:
        return len(self.lines) - self._next

    def batch(self, size: int) -> list[bytes]:
        return self.lines[self._next : self._next + size]

    def ack(self, count: int) -> None:
        """Record that the next ``count`` lines were acknowledged by the ingest."""
        self._next += count
        if self._next >= len(self.lines):
            self.finish()
            return
        offset = self._ends[self._next - 1]
        new = f"{self._base}.{offset}.sending"
        try:
            os.rename(self._dir / self._name, self._dir / new)
        except OSError:
            return  # progress not recorded: a takeover resends from the last recorded point
        self._name = new
        self.offset = offset
        self._count_corrupt(offset)

    def _count_corrupt(self, upto: int | None) -> None:
        passed = [end for end in self._bad if upto is None or end <= upto]
        if passed:
            self._bad = self._bad[len(passed) :]
            STATS.drop("corrupt", len(passed), f"unreadable lines in spool segment {self._base}")

    def finish(self) -> None:
        try:
            os.unlink(self._dir / self._name)
        except OSError:
            pass
        else:
            self._count_corrupt(None)
        self.release()

    def release(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            self._spool._claims.discard(self)
            try:
                os.close(fd)
            except OSError:
                pass


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

    # --- setup ---------------------------------------------------------------------

    def _ensure(self) -> bool:
        if self._ready:
            return True
        if self.error is not None:
            return False
        try:
            _secure_dir(self.directory)
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
                    _write_all(self._fd, data)
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
            self._written += len(data)
            self._last_write = time.monotonic()
            if self._approx_total is not None:
                self._approx_total += len(data)
            return len(lines)

    def _open_locked(self) -> None:
        name = f"seg-{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.tmp"
        path = self.directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, 0o600)
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
        for name in self._sorted_names():
            parsed = _parse(name)
            if parsed is None:
                continue
            # Ready segments, and those of dead writers and claimers (their lock is gone).
            evicted = _evict(self.directory / name, parsed[1], parsed[2])
            if evicted is None:
                continue
            size, events = evicted
            STATS.drop("evicted", events, f"spool over {self.max_bytes} bytes, oldest removed")
            total -= size
            if total + incoming <= self.max_bytes:
                break
        self._approx_total = total
        if total + incoming > self.max_bytes:
            raise _SpoolFull

    def _scan_total(self) -> int:
        total = 0
        for name in self._sorted_names():
            try:
                total += os.lstat(self.directory / name).st_size
            except OSError:
                pass
        return total

    def _sorted_names(self) -> list[str]:
        try:
            names = [n for n in os.listdir(self.directory) if n.startswith("seg-")]
        except OSError:
            return []
        names.sort()
        return names

    # --- claiming ------------------------------------------------------------------

    def claim(self) -> Claim | None:
        """Lock the oldest segment nobody is working on, or return ``None``."""
        with self._lock:
            if not self._ensure():
                return None
            own = self._tmp.name if self._tmp is not None else None
            for name in self._sorted_names():
                parsed = _parse(name)
                if parsed is None or name == own:
                    continue
                claim = self._try_claim(name, *parsed)
                if claim is not None:
                    return claim
        return None

    def _try_claim(self, name: str, base: str, kind: str, offset: int) -> Claim | None:
        path = self.directory / name
        locked = _lock_unheld(path, kind)
        if locked is None:
            return None
        fd = locked[0]
        try:
            new = f"{base}.{offset}.sending"
            if new != name:
                os.rename(path, self.directory / new)
            claim = Claim(self, self.directory, base, fd, new, offset)
        except OSError:
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

    # --- inspection and fork -------------------------------------------------------

    def info(self) -> SpoolInfo:
        segments = events = size = 0
        oldest: float | None = None
        for name in self._sorted_names():
            parsed = _parse(name)
            if parsed is None:
                continue
            path = self.directory / name
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
            except OSError:
                continue
            segments += 1
            size += len(data)
            events += data.count(b"\n", parsed[2]) if parsed[2] < len(data) else 0
            created = _created(parsed[0])
            oldest = created if oldest is None else min(oldest, created)
        return SpoolInfo(segments, events, size, oldest)

    def after_fork_in_child(self) -> None:
        # The parent keeps writing its segment and sending its claims; the child must
        # not, and must not keep their locks alive either: flock belongs to the open file,
        # which our inherited copies share. Closing our copies leaves the parent's locks
        # in place and lets them go when the parent closes its own.
        fds = [self._fd] + [claim._fd for claim in self._claims]
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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _lock_unheld(path: Path, kind: str) -> tuple[int, os.stat_result] | None:
    """Open and lock a segment nobody holds: ``(fd, stat)`` with the lock, else ``None``.

    Lock, then verify the path still names the locked file: it may have been renamed
    (claimed, acknowledged) or removed between our open and our lock.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        st = os.fstat(fd)
        if os.lstat(path).st_ino == st.st_ino and not (
            # Just created: its writer is about to lock it.
            kind == "tmp" and time.time() - st.st_mtime < _STALE_TMP_SECONDS
        ):
            return fd, st
    except OSError:
        pass
    os.close(fd)
    return None


def _evict(path: Path, kind: str, offset: int) -> tuple[int, int] | None:
    """Delete a segment nobody holds; returns (bytes, events) removed."""
    locked = _lock_unheld(path, kind)
    if locked is None:
        return None
    fd, st = locked
    try:
        data = os.pread(fd, st.st_size, 0)
        os.unlink(path)
        return st.st_size, data.count(b"\n", min(offset, len(data)))
    except OSError:
        return None
    finally:
        os.close(fd)
