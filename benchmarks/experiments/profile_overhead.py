#!/usr/bin/env python
"""Where peekapi-otel's per-request cost goes (cProfile, every thread).

    python benchmarks/experiments/profile_overhead.py [--framework raw_asgi,flask]
        [--variant provider] [--requests 3000] [--top 25]

Each framework runs in a child process as one way in of ``run.py`` (``zero``,
``configure`` or ``provider``; loopback ingest). ``threading.Thread.run`` is wrapped
before the pipeline starts so the batcher and sender threads are profiled too; their
stats are merged with the request thread's. Printed per framework:

* our entry points with their *inclusive* time per request (hooks, processor callbacks,
  sampler wrapper, background threads): this is what peekapi-otel adds on top of OTel;
* the top functions in ``peekapi_otel`` by self time.

The clock is each thread's CPU time (``time.thread_time``), so waits do not count.
cProfile inflates small Python calls, so read the numbers as shares, not as absolutes.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # benchmarks/
sys.path.insert(0, str(HERE))

ENTRY_POINTS = (
    ("_asgi.py", "__call__"),  # _CountingASGI: the request's start (the app runs after it)
    ("_asgi.py", "_start"),  # consumer, method and sizes from the scope, onto the span
    ("_asgi.py", "send"),  # _AsgiRequest: response bytes
    ("_asgi.py", "receive"),  # request bytes when no Content-Length announced them
    ("_wsgi.py", "wsgi_request_hook"),
    ("_wsgi.py", "flask_response_hook"),
    ("_wsgi.py", "wsgi_response_hook"),
    ("_wsgi.py", "django_request_hook"),
    ("_wsgi.py", "django_response_hook"),
    ("_processor.py", "on_start"),
    ("_processor.py", "_on_ending"),
    ("_processor.py", "on_end"),
    ("_sampling.py", "should_sample"),
    ("_pipeline.py", "_batcher_loop"),
    ("_pipeline.py", "_sender_loop"),
    ("_processor.py", "force_flush"),
)


def child(framework: str, variant: str, n: int, ingest: str, out: str) -> None:
    profiles: list[cProfile.Profile] = []
    original_run = threading.Thread.run

    def run(self: threading.Thread) -> None:
        prof = cProfile.Profile(time.thread_time)
        profiles.append(prof)
        prof.enable()
        try:
            original_run(self)
        finally:
            prof.disable()

    threading.Thread.run = run  # type: ignore[method-assign]
    from _apps import build

    storage = tempfile.mkdtemp(prefix="peekapi-bench-prof-")
    built = build(framework, variant, ingest, storage)
    built.driver.run(300)  # warm-up
    built.drain()
    main = cProfile.Profile(time.thread_time)
    main.enable()
    built.driver.run(n)
    built.drain()
    main.disable()
    built.processor.shutdown()
    stats = pstats.Stats(main)
    for prof in profiles:
        try:
            stats.add(prof)
        except TypeError:  # a thread that never ran anything
            pass
    stats.dump_stats(out)


def report(path: str, n: int, top: int) -> str:
    stats = pstats.Stats(path)
    raw = stats.stats  # type: ignore[attr-defined]
    lines = []
    lines.append(f"  our entry points, inclusive us/request (n={n}):")
    for (file, _line, func), (_cc, nc, _tt, ct, _callers) in sorted(
        raw.items(), key=lambda kv: -kv[1][3]
    ):
        if "peekapi_otel" not in file:
            continue
        for suffix, name in ENTRY_POINTS:
            if file.endswith(suffix) and func == name:
                where = f"{Path(file).name}:{func}"
                lines.append(f"    {ct / n * 1e6:8.1f}  {where}  ({nc / n:.1f} calls/request)")
    lines.append(f"  top {top} peekapi_otel functions by self time (us/request, self | inclusive):")
    ours = [(key, val) for key, val in raw.items() if "peekapi_otel" in key[0] and val[2] > 0]
    for (file, line, func), (_cc, nc, tt, ct, _callers) in sorted(ours, key=lambda kv: -kv[1][2])[
        :top
    ]:
        lines.append(
            f"    {tt / n * 1e6:7.2f} | {ct / n * 1e6:7.2f}  {Path(file).name}:{line} {func}"
            f"  ({nc / n:.2f}/req)"
        )
    lines.append(f"  top {top} functions overall by self time (us/request):")
    allf = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    for (file, line, func), (_cc, nc, tt, _ct, _callers) in allf:
        short = file.split("site-packages/")[-1] if "site-packages" in file else Path(file).name
        lines.append(f"    {tt / n * 1e6:7.2f}  {short}:{line} {func}  ({nc / n:.2f}/req)")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--framework", default="raw_asgi,flask")
    ap.add_argument("--variant", default="provider", help="a way in: zero, configure, provider")
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        fw, variant, n, ingest, out = args.child
        child(fw, variant, int(n), ingest, out)
        return 0
    from _apps import child_env

    ingest = subprocess.Popen(
        [sys.executable, str(HERE / "_ingest.py")], stdout=subprocess.PIPE, text=True
    )
    assert ingest.stdout is not None
    url = f"http://127.0.0.1:{int(ingest.stdout.readline())}/v1/events"
    try:
        for fw in args.framework.split(","):
            out = tempfile.mktemp(suffix=f"-{fw}.pstats")
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    fw,
                    args.variant,
                    str(args.requests),
                    url,
                    out,
                ],
                check=True,
                env=child_env(fw, args.variant),
                cwd=str(HERE.parent),
            )
            print(f"== {fw} ({args.variant}), profile saved to {out}")
            print(report(out, args.requests, args.top))
            print()
    finally:
        ingest.terminate()
        ingest.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
