#!/usr/bin/env python
"""Instructions per request (callgrind), a figure that does not depend on machine noise.

    python benchmarks/experiments/instructions.py [--framework raw_asgi] [--requests 1000]
        [--variants bare,otel,provider,peekapi]

Needs ``valgrind``. For each variant of ``run.py`` (see ``benchmarks/_apps.py``; also
``configure_default_sampler``: ``configure`` with OpenTelemetry's default sampler instead
of the PeekAPI sampler wrap) a child process builds the app, warms it up, then drives
``n`` requests and waits for their delivery to a loopback ingest; it runs under
callgrind twice, with ``n`` requests and with none, and the difference divided by ``n``
is the instruction count per request. ``PYTHONHASHSEED=0`` keeps both runs' hashing the same.

Instructions are not time (cache misses and wake-ups cost time too, see ``run.py``), but
they show what each piece of code costs without the machine's swings.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent  # benchmarks/
sys.path.insert(0, str(HERE))
VARIANTS = ("bare", "otel", "configure", "configure_default_sampler", "provider", "peekapi")


def child(framework: str, variant: str, n: int, ingest: str) -> None:
    from _apps import build

    built = build(framework, variant.replace("_default_sampler", ""), ingest, tempfile.mkdtemp())
    if variant.endswith("_default_sampler"):
        # The middleware's tracer got the wrapped sampler; give it back the one it wraps.
        from opentelemetry import trace

        provider: Any = trace.get_tracer_provider()
        provider.sampler = provider.sampler.inner
        tracer = getattr(built.driver.app, "tracer", None)  # a raw OpenTelemetryMiddleware
        if tracer is not None:
            tracer.sampler = tracer.sampler.inner
    built.driver.run(300)
    built.drain()
    built.driver.run(n)
    built.drain()


def _instructions(framework: str, variant: str, n: int, ingest: str) -> int:
    from _apps import child_env

    env = {**child_env(framework, variant.replace("_default_sampler", "")), "PYTHONHASHSEED": "0"}
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
    ap.add_argument("--framework", default="raw_asgi")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    variants = args.variants.split(",")
    ingest = subprocess.Popen(
        [sys.executable, str(HERE / "_ingest.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert ingest.stdout is not None
        url = f"http://127.0.0.1:{int(ingest.stdout.readline())}/v1/events"
        per_request = {}
        for variant in variants:
            total = _instructions(args.framework, variant, args.requests, url)
            empty = _instructions(args.framework, variant, 0, url)
            per_request[variant] = (total - empty) / args.requests
            print(f"{variant:28} {per_request[variant]:12,.0f} instructions/request", flush=True)
    finally:
        ingest.terminate()
        ingest.wait(timeout=10)
    p = per_request
    rows = [
        ("configure() adds (c - b)", "configure", "otel"),
        ("  its own work (default sampler)", "configure_default_sampler", "otel"),
        ("  OpenTelemetry work its sampler saves", "configure_default_sampler", "configure"),
        ("own provider adds (c - b)", "provider", "otel"),
        ("zero code adds (c - b)", "zero", "otel_zero"),
        ("peekapi middleware adds (d - a)", "peekapi", "bare"),
    ]
    print()
    for label, minuend, subtrahend in rows:
        if minuend in p and subtrahend in p:
            print(f"{label:40} {p[minuend] - p[subtrahend]:10,.0f}")


if __name__ == "__main__":
    main()
