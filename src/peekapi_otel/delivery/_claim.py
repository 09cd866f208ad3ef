"""A spool segment locked for sending, and its progress recorded in its name."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from peekapi_otel.core._stats import STATS
from peekapi_otel.delivery._segments import parse_lines


class Claim:
    """A segment this process locked for sending.

    Corrupt lines are counted as the recorded offset passes them, so a segment claimed
    again after a failed drain does not count them twice.
    """

    def __init__(
        self,
        directory: Path,
        base: str,
        fd: int,
        name: str,
        offset: int,
        on_release: Callable[[Claim], None],
    ) -> None:
        self._on_release = on_release
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

    @property
    def fd(self) -> int:
        """The locked file; ``-1`` once released."""
        return self._fd

    def release(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            self._on_release(self)
            try:
                os.close(fd)
            except OSError:
                pass
