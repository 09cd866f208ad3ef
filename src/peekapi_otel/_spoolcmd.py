"""``peekapi-otel spool``: what waits on disk, and ``--drain`` to send it now."""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

from peekapi_otel._options import Options, default_storage_root
from peekapi_otel._pipeline import Pipeline
from peekapi_otel._spool import Spool, SpoolInfo
from peekapi_otel._stats import stats

_DRAIN_TIMEOUT = 300.0


def _is_spool(path: Path) -> bool:
    return any(p.name.startswith("seg-") for p in path.iterdir())


def _directories(path: Path) -> list[Path]:
    """``path`` itself when it holds segments, else its per-(endpoint, key) children."""
    if _is_spool(path):
        return [path]
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.is_symlink())


def _describe(path: Path, info: SpoolInfo) -> str:
    oldest = "-"
    if info.oldest is not None:
        age = max(time.time() - info.oldest, 0)
        when = datetime.datetime.fromtimestamp(info.oldest, datetime.timezone.utc)
        oldest = f"{when.isoformat(timespec='seconds')} ({age:.0f} s ago)"
    return (
        f"{path}\n  segments {info.segments}  events {info.events}  bytes {info.bytes}  "
        f"oldest {oldest}"
    )


def _drain(options: Options, directory: Path) -> int:
    if options.problem is not None:
        print(f"peekapi-otel spool: cannot drain: {options.problem}", file=sys.stderr)
        return 1
    spool = Spool(directory, options.max_storage_bytes)
    before = spool.info().events
    pipeline = Pipeline(options, spool=spool)
    deadline = time.monotonic() + _DRAIN_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if spool.info().events == 0:
                break
            time.sleep(0.5)
    finally:
        pipeline.shutdown(timeout=options.shutdown_timeout)
    left = spool.info().events
    counters = stats()
    print(
        f"drained {counters['recovered']} of {before} events to {options.endpoint}; "
        f"{left} still waiting"
    )
    return 0 if left == 0 else 1


def run(args: argparse.Namespace) -> int:
    options = Options.from_env()
    if args.path:
        root = Path(args.path)
    elif options.problem is None:
        root = options.spool_dir()
    else:
        root = Path(options.storage_path) if options.storage_path else default_storage_root()
    if not root.is_dir():
        print(f"no spool at {root}: nothing is waiting", file=sys.stderr if args.path else None)
        return 1 if args.path else 0
    directories = _directories(root)
    if not directories:
        print(f"{root}: no spooled events")
    for directory in directories:
        print(_describe(directory, Spool(directory, options.max_storage_bytes).info()))
    if args.drain:
        if len(directories) != 1:
            print(
                "peekapi-otel spool: --drain needs one spool directory: set PEEKAPI_API_KEY "
                "and PEEKAPI_ENDPOINT, or pass --path to it",
                file=sys.stderr,
            )
            return 2
        return _drain(options, directories[0])
    return 0
