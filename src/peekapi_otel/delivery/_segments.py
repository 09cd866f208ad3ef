"""Segment files and spool directories at the filesystem edge: names, safe opening,
locks, and the lines a segment holds."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import time
from pathlib import Path
from typing import Final

from peekapi_otel._schema import event_problem

# A .tmp whose lock is free is only taken over when untouched this long: the writer
# creates the file and locks it a moment later.
_STALE_TMP_SECONDS: Final = 2.0
# No symlink at the last component; a FIFO or device named like a segment must not
# block the open (it is refused once opened, see open_segment).
_OPEN_FLAGS: Final = os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class SpoolUnavailable(Exception):
    """The spool directory cannot be used (symlink, foreign owner, not writable...)."""


class NotASegment(Exception):
    """A file named like a segment that is no regular file of this user."""


def parse_name(name: str) -> tuple[str, str, int] | None:
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


def created_at(base: str) -> float:
    """Epoch seconds at which the segment ``base`` was created."""
    try:
        return int(base.split("-")[1]) / 1e9
    except (IndexError, ValueError):
        return 0.0


def secure_dirs(directory: Path, *, create: bool = True) -> None:
    """Create (0700) or check the storage root and the spool directory in it.

    Each must be a real directory (no symlink) owned by this user and writable by no one
    else: another local user who pre-created either (the fallback root is in the shared
    temp directory) could otherwise plant events to be sent under this user's key, or
    remove this user's events. Called each time the spool opens or claims a segment.
    """
    for path in (directory.parent, directory):
        if create:
            try:
                if path == directory.parent:
                    os.makedirs(path, mode=0o700, exist_ok=True)
                else:
                    os.mkdir(path, 0o700)
            except FileExistsError:
                pass
            except OSError as exc:
                raise SpoolUnavailable(f"cannot create {path}: {exc}") from None
        _check_dir(path)
    mode = stat.S_IMODE(os.lstat(directory).st_mode)
    if mode != 0o700:
        os.chmod(directory, 0o700)  # ours and not writable by others: make it unreadable too


def _check_dir(path: Path) -> None:
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise SpoolUnavailable(f"cannot use spool path {path}: {exc}") from None
    if stat.S_ISLNK(st.st_mode):
        raise SpoolUnavailable(f"spool path {path} is a symlink; refusing to use it")
    if not stat.S_ISDIR(st.st_mode):
        raise SpoolUnavailable(f"spool path {path} is not a directory; refusing to use it")
    if st.st_uid != os.geteuid():
        raise SpoolUnavailable(
            f"spool path {path} is owned by uid {st.st_uid}, not by this user "
            f"(uid {os.geteuid()}); refusing to use it"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise SpoolUnavailable(
            f"spool path {path} is writable by other users (mode "
            f"{stat.S_IMODE(st.st_mode):o}); refusing to use it"
        )


def open_segment(path: Path, flags: int, mode: int = 0o600) -> int:
    """Open a segment file: no symlink, no blocking open, a regular file of this user."""
    fd = os.open(path, flags | _OPEN_FLAGS, mode)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotASegment(f"{path} is not a regular file")
        if st.st_uid != os.geteuid():
            raise NotASegment(f"{path} is owned by uid {st.st_uid}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock_unheld(path: Path, kind: str) -> tuple[int, os.stat_result] | None:
    """Open and lock a segment nobody holds: ``(fd, stat)`` with the lock, else ``None``.
    Raises :class:`NotASegment` for a file that is no segment.

    Lock, then verify the path still names the locked file: it may have been renamed
    (claimed, acknowledged) or removed between our open and our lock.
    """
    try:
        fd = open_segment(path, os.O_RDONLY)
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


def evict(path: Path, kind: str, offset: int) -> tuple[int, int] | None:
    """Delete a segment nobody holds; returns (bytes, events) removed."""
    try:
        locked = lock_unheld(path, kind)
    except NotASegment:
        return None
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


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def parse_lines(data: bytes) -> tuple[list[bytes], list[int], list[int]]:
    """Split segment bytes into event lines.

    Returns the lines, the byte offset just past each line, and the offset just past each
    corrupt line: not JSON, JSON that is no event (:func:`line_problem`), or a last line
    cut short by a crash.
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
        if line_problem(line) is None:
            lines.append(line)
            ends.append(pos)
        else:
            bad.append(pos)
    return lines, ends, bad


def line_problem(line: bytes) -> str | None:
    """Why a spooled line cannot be sent, or ``None``."""
    try:
        obj = json.loads(line)
    except ValueError:
        return "not JSON"
    return event_problem(obj)
