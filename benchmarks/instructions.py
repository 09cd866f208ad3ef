#!/usr/bin/env python
"""Instructions per request (callgrind), a figure that does not depend on machine noise.

    python benchmarks/instructions.py [--framework raw_asgi] [--requests 1000]

Needs ``valgrind``. For each variant of ``run.py`` (plus ``otel_peek`` with
OpenTelemetry's default sampler instead of the PeekAPI sampler wrap) a child process
builds the app, warms it up, then drives ``n`` requests and waits for their delivery to a
loopback ingest; it runs under callgrind twice, with ``n`` requests and with none, and the
difference divided by ``n`` is the instruction count per request. ``PYTHONHASHSEED=0``
keeps both runs' hashing the same.

Instructions are not time (cache misses and wake-ups cost time too, see ``run.py``), but
they show what each piece of code costs without the machine's swings.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = ("bare", "otel", "otel_peek", "otel_peek_default_sampler", "peekapi")


def child(framework: str, variant: str, n: int, ingest: str) -> None:
    sys.path.insert(0, str(HERE))
    from _apps import build

    built = build(framework, variant.replace("_default_sampler", ""), ingest, tempfile.mkdtemp())
    if variant.endswith("_default_sampler"):
        # The middleware's tracer got the wrapped sampler; give it back the one it wraps.
        tracer = built.driver.app.tracer
        tracer.sampler = tracer.sampler.inner
    built.driver.run(300)
    built.drain()
    built.driver.run(n)
    built.drain()


def _instructions(framework: str, variant: str, n: int, ingest: str) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        framework,
        variant,
        str(n),
        ingest,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{variant}: callgrind failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        framework, variant, n, ingest = sys.argv[2:6]
        child(framework, variant, int(n), ingest)
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--framework", default="raw_asgi", choices=("raw_asgi", "raw_wsgi"))
    ap.add_argument("--requests", type=int, default=1000)
    args = ap.parse_args()
    ingest = subprocess.Popen(
        [sys.executable, str(HERE / "_ingest.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert ingest.stdout is not None
        url = f"http://127.0.0.1:{int(ingest.stdout.readline())}/v1/events"
        per_request = {}
        for variant in VARIANTS:
            total = _instructions(args.framework, variant, args.requests, url)
            empty = _instructions(args.framework, variant, 0, url)
            per_request[variant] = (total - empty) / args.requests
            print(f"{variant:28} {per_request[variant]:12,.0f} instructions/request", flush=True)
    finally:
        ingest.terminate()
        ingest.wait(timeout=10)
    p = per_request
    rows = [
        ("peekapi-otel adds (c - b)", p["otel_peek"] - p["otel"]),
        ("  its own work (default sampler)", p["otel_peek_default_sampler"] - p["otel"]),
        ("  OpenTelemetry work its sampler saves", p["otel_peek_default_sampler"] - p["otel_peek"]),
        ("peekapi middleware adds (d - a)", p["peekapi"] - p["bare"]),
    ]
    print()
    for label, value in rows:
        print(f"{label:40} {value:10,.0f}")


if __name__ == "__main__":
    main()
