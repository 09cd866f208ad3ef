"""``peekapi-otel spool``: what waits on disk, ``--drain`` to send it now, and
``--drain --to-current`` to send events spooled for an old endpoint or API key with the
current ones."""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import time
from pathlib import Path

from peekapi_otel.core._options import Options, default_storage_root
from peekapi_otel.core._stats import stats
from peekapi_otel.delivery import Pipeline, Spool, SpoolInfo, move_segments

PROG = "peekapi-otel spool"
_DRAIN_TIMEOUT = 300.0
# A drain that makes no progress for this long while the ingest fails is given up.
_STALL_SECONDS = 30.0
_DIGEST = re.compile(r"^[0-9a-f]{16}$")


def _contents(directory: Path) -> SpoolInfo:
    """What a spool directory holds, counted the way the sender will read it."""
    return Spool(directory, 1).info()


def _has_segments(path: Path) -> bool:
    return any(p.name.startswith("seg-") for p in path.iterdir())


def _directories(path: Path) -> list[Path]:
    """``path`` itself when it is a spool directory, else its per-(endpoint, key) children."""
    if _has_segments(path):
        return [path]
    children = sorted(p for p in path.iterdir() if p.is_dir() and not p.is_symlink())
    return children or [path]


def _describe(path: Path, info: SpoolInfo) -> str:
    oldest = "-"
    if info.oldest is not None:
        age = max(time.time() - info.oldest, 0)
        when = datetime.datetime.fromtimestamp(info.oldest, datetime.timezone.utc)
        oldest = f"{when.isoformat(timespec='seconds')} ({age:.0f} s ago)"
    corrupt = f" (+{info.corrupt} unreadable)" if info.corrupt else ""
    return (
        f"{path}\n  segments {info.segments}  events {info.events}{corrupt}  "
        f"bytes {info.bytes}  oldest {oldest}"
    )


def _refusal(options: Options, directory: Path) -> str | None:
    """Why ``directory`` must not be drained with ``options``, if it must not."""
    expected = options.spool_dir()
    if directory.name != expected.name and _DIGEST.match(directory.name):
        return (
            f"{directory} holds events spooled for another endpoint or API key than "
            f"PEEKAPI_ENDPOINT={options.endpoint} with this PEEKAPI_API_KEY; set those to "
            "the ones the events were spooled with, or add --to-current to send them "
            "with the current ones"
        )
    return None


def _probe(options: Options) -> str | None:
    """A problem with the ingest that makes a drain pointless, or ``None``."""
    from peekapi_otel.server._check import _probe as probe

    ok, answer = probe(options)
    return None if ok else f"the ingest at {options.endpoint} {answer}"


def _drain(options: Options, directory: Path) -> int:
    before = _contents(directory)
    if before.events == 0 and before.corrupt == 0:
        print(f"nothing to drain in {directory}")
        return 0
    problem = _probe(options)
    if problem is not None:
        print(
            f"{PROG}: cannot drain: {problem}; the {before.events} events stay on disk",
            file=sys.stderr,
        )
        return 1
    spool = Spool(directory, options.max_storage_bytes)
    pipeline = Pipeline(options, spool=spool)
    deadline = time.monotonic() + _DRAIN_TIMEOUT
    reason = f"not finished after {_DRAIN_TIMEOUT:.0f} s"
    left = before.events
    progress_at = time.monotonic()
    try:
        while time.monotonic() < deadline:
            now_left = _contents(directory).events
            if now_left == 0:
                reason = ""
                break
            if now_left < left:
                left, progress_at = now_left, time.monotonic()
            if pipeline.paused:
                reason = "the ingest refused the API key or redirected (see the error above)"
                break
            if time.monotonic() - progress_at > _STALL_SECONDS:
                reason = f"no progress for {_STALL_SECONDS:.0f} s: the ingest keeps failing"
                break
            time.sleep(0.2)
    finally:
        pipeline.shutdown(timeout=options.shutdown_timeout)
    after = _contents(directory)
    counters = stats()
    dropped = counters.get("dropped")
    corrupt = dropped.get("corrupt", 0) if isinstance(dropped, dict) else 0
    print(
        f"drained {counters['recovered']} of {before.events} events to {options.endpoint}; "
        f"{corrupt} unreadable lines skipped; {after.events} still waiting"
    )
    if after.events:
        print(f"{PROG}: drain incomplete: {reason or 'events still waiting'}", file=sys.stderr)
        return 1
    return 0


def _drain_to_current(options: Options, directory: Path) -> int:
    """Move the events of ``directory`` (spooled for an old endpoint or key) into the
    current spool directory, then drain that with the current endpoint and key."""
    current = options.spool_dir()
    if directory.resolve() != current.resolve():
        problem = _probe(options)
        if problem is not None:
            waiting = _contents(directory).events
            print(
                f"{PROG}: cannot drain: {problem}; the {waiting} events stay in {directory}",
                file=sys.stderr,
            )
            return 1
        target = Spool(current, options.max_storage_bytes)
        moved = move_segments(Spool(directory, options.max_storage_bytes), target)
        print(f"moved {moved} events from {directory} to {current}")
    return _drain(options, current)


def run(args: argparse.Namespace) -> int:
    options = Options.from_env()
    if args.drain and options.problem is not None:
        print(f"{PROG}: cannot drain: {options.problem}", file=sys.stderr)
        return 1
    configured = not args.path and options.problem is None
    if args.path:
        root = Path(args.path)
    elif configured:
        root = options.spool_dir()
    else:
        root = Path(options.storage_path) if options.storage_path else default_storage_root()
    if args.path and not root.is_dir():
        print(f"{PROG}: {root} is not a directory", file=sys.stderr)
        return 1
    if not root.is_dir():
        print(f"no spool at {root}: nothing is waiting")
        return 0
    try:
        directories = [root] if configured else _directories(root)
    except OSError as exc:
        print(f"{PROG}: cannot read {root}: {exc}", file=sys.stderr)
        return 1
    for directory in directories:
        print(_describe(directory, _contents(directory)))
    if args.drain:
        if len(directories) != 1:
            print(
                f"{PROG}: --drain needs one spool directory; {root} holds "
                f"{len(directories)}: pass --path to one of them",
                file=sys.stderr,
            )
            return 2
        directory = directories[0]
        if getattr(args, "to_current", False):
            return _drain_to_current(options, directory)
        refusal = _refusal(options, directory)
        if refusal is not None:
            print(f"{PROG}: cannot drain: {refusal}", file=sys.stderr)
            return 1
        return _drain(options, directory)
    if getattr(args, "to_current", False):
        print(f"{PROG}: --to-current goes with --drain", file=sys.stderr)
        return 2
    return 0
