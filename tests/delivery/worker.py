"""A process that uses the delivery pipeline the way an app does, for crash, fork and
signal tests. Configured by PEEKAPI_* variables; prints progress lines on stdout."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import sys
import time
from pathlib import Path

from support import key_of, make_span  # type: ignore[import-not-found]

from peekapi_otel.core._options import Options
from peekapi_otel.core._record import record_of_span
from peekapi_otel.core._stats import stats
from peekapi_otel.delivery._pipeline import Pipeline
from peekapi_otel.delivery._retry import RetryPolicy
from peekapi_otel.delivery._shutdown import install_sigterm_handler


def build(args: argparse.Namespace) -> Pipeline:
    if args.fast:
        policy = RetryPolicy(base=0.05, cap=0.5, rng=random.Random(os.getpid()))
        return Pipeline(Options.from_env(), policy=policy, recovery_interval=1.0)
    return Pipeline(Options.from_env())


def produce(pipeline: Pipeline, count: int, keys: Path | None) -> None:
    lines = []
    for _ in range(count):
        span = make_span()
        pipeline.submit(record_of_span(span))
        lines.append("{} {}\n".format(*key_of(span)))
    if keys is not None:
        with open(keys, "a") as fh:
            fh.writelines(lines)


def say(prefix: str, payload: object = None) -> None:
    print(prefix + ("" if payload is None else json.dumps(payload)), flush=True)


def idle(pipeline: Pipeline, seconds: float) -> None:
    """Serve no traffic; the main thread ticks every 10 ms and reports its worst delay."""
    worst = 0.0
    last_report = start = time.monotonic()
    while time.monotonic() - start < seconds:
        before = time.monotonic()
        time.sleep(0.01)
        worst = max(worst, time.monotonic() - before - 0.01)
        if time.monotonic() - last_report >= 0.25:
            last_report = time.monotonic()
            say("stats ", {**stats(), "worst_tick": worst, "backlog": pipeline.spool.info().events})


def child_work(keys: Path, count: int) -> None:
    pipeline = PIPELINE
    assert pipeline is not None
    produce(pipeline, count, keys.with_name(f"{keys.name}.{os.getpid()}"))


PIPELINE: Pipeline | None = None


def main() -> int:
    global PIPELINE
    parser = argparse.ArgumentParser()
    parser.add_argument("mode")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--more", type=int, default=0)
    parser.add_argument("--children", type=int, default=2)
    parser.add_argument("--keys", type=Path)
    parser.add_argument("--then", default="exit")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--fast", action="store_true")
    args = parser.parse_args()
    install_sigterm_handler()
    pipeline = PIPELINE = build(args)
    say("started ", {"pid": os.getpid()})
    try:
        if args.mode == "produce":
            produce(pipeline, args.count, args.keys)
            ok = pipeline.force_flush(30)
            say("flushed ", {**stats(), "ok": ok})
            if args.more:
                produce(pipeline, args.more, args.keys.with_name(args.keys.name + ".more"))
                say("more")
            if args.then == "idle":
                idle(pipeline, args.seconds)
            elif args.then == "sleep":
                time.sleep(args.seconds)
        elif args.mode == "idle":
            idle(pipeline, args.seconds)
        elif args.mode in ("fork", "mp"):
            assert args.keys is not None
            produce(pipeline, args.count, args.keys.with_name(args.keys.name + ".parent"))
            if args.mode == "fork":
                pids = []
                for _ in range(args.children):
                    pid = os.fork()
                    if pid == 0:
                        child_work(args.keys, args.count)
                        sys.exit(0)  # a normal exit: atexit flushes the child's events
                    pids.append(pid)
                codes = [os.waitpid(pid, 0)[1] for pid in pids]
            else:
                ctx = multiprocessing.get_context("fork")
                procs = [
                    ctx.Process(target=child_work, args=(args.keys, args.count))
                    for _ in range(args.children)
                ]
                for proc in procs:
                    proc.start()
                for proc in procs:
                    proc.join(60)
                codes = [proc.exitcode or 0 for proc in procs]
            say("children ", codes)
        elif args.mode == "hammer":
            spans = [make_span() for _ in range(args.count)]
            assert args.keys is not None
            args.keys.write_text("".join("{} {}\n".format(*key_of(s)) for s in spans))
            done = 0
            say("ready")
            try:
                for span in spans:
                    pipeline.submit(record_of_span(span))
                    done += 1
                time.sleep(args.seconds)
            finally:
                args.keys.with_name(args.keys.name + ".done").write_text(str(done))
    finally:
        say("exiting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
