#!/usr/bin/env python
"""Split the processor's per-request cost (raw ASGI, one process, interleaved rounds).

    python benchmarks/experiment_processor.py [--rounds 9] [--requests 400]

Apps: ``otel`` (plain provider) and ``proc`` (provider + ``attach``: processor and sampler
wrap, no hooks). Toggled per measurement by monkeypatching this process only:
``noprotect`` (credential guard off), ``nosubmit`` (on_end does not queue/encode),
``nowrap`` (a second ``proc`` app whose provider keeps the unwrapped sampler);
``noonstart``/``noonend``: our on_start/on_end replaced by no-ops;
``noop processor``: a provider with the SDK's base ``SpanProcessor`` (does nothing).
Prints median us/request over rounds and the median per-round difference to ``otel``.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--ingest", default=None)
    args = ap.parse_args()

    import subprocess

    ingest_proc = None
    url = args.ingest
    if url is None:
        ingest_proc = subprocess.Popen(
            [sys.executable, os.path.join(os.path.dirname(__file__), "_ingest.py")],
            stdout=subprocess.PIPE,
            text=True,
        )
        url = f"http://127.0.0.1:{int(ingest_proc.stdout.readline())}/v1/events"  # type: ignore[union-attr]

    from _apps import API_KEY, AsgiDriver, raw_asgi_app
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.trace import TracerProvider

    from peekapi_otel.otel import _credentials
    from peekapi_otel.otel._configure import attach

    p0 = TracerProvider()
    otel = AsgiDriver(OpenTelemetryMiddleware(raw_asgi_app, tracer_provider=p0))
    p1 = TracerProvider()
    proc = attach(p1, api_key=API_KEY, endpoint=url, storage_path=tempfile.mkdtemp())
    full = AsgiDriver(OpenTelemetryMiddleware(raw_asgi_app, tracer_provider=p1))
    p2 = TracerProvider()
    inner = p2.sampler
    attach(p2, api_key=API_KEY, endpoint=url, storage_path=tempfile.mkdtemp())
    p2.sampler = inner
    nowrap = AsgiDriver(OpenTelemetryMiddleware(raw_asgi_app, tracer_provider=p2))

    from opentelemetry.sdk.trace import SpanProcessor

    p3 = TracerProvider()
    p3.add_span_processor(SpanProcessor())
    noop = AsgiDriver(OpenTelemetryMiddleware(raw_asgi_app, tracer_provider=p3))

    real_submit = proc._submit  # the processor hands request spans straight to this
    supported = _credentials.SUPPORTED

    from peekapi_otel.otel._processor import PeekApiSpanProcessor

    real_on_start, real_on_end = PeekApiSpanProcessor.on_start, PeekApiSpanProcessor.on_end

    def setup(name: str) -> None:
        _credentials.SUPPORTED = "noprotect" not in name and supported
        proc._submit = (lambda span: None) if "nosubmit" in name else real_submit
        PeekApiSpanProcessor.on_start = (  # type: ignore[method-assign]
            (lambda self, span, parent_context=None: None) if "noonstart" in name else real_on_start
        )
        PeekApiSpanProcessor.on_end = (  # type: ignore[method-assign]
            (lambda self, span: None) if "noonend" in name else real_on_end
        )

    cases = {
        "otel": otel,
        "proc": full,
        "proc noprotect": full,
        "proc nosubmit": full,
        "proc nowrap": nowrap,
        "noop processor": noop,
        "proc noonstart": full,
        "proc noonend": full,
        "proc noonstart noonend": full,
    }
    n = args.requests
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for r in range(args.rounds + 1):
        names = list(cases)
        k = r % len(names)
        for name in names[k:] + names[:k]:
            setup(name)
            gc.collect()
            c0 = time.process_time()
            cases[name].run(n)
            proc.force_flush(30_000)
            p2.force_flush(30_000)
            us = (time.process_time() - c0) / n * 1e6
            if os.environ.get("BENCH_DEBUG"):
                import peekapi_otel

                print(name, round(us, 1), peekapi_otel.stats()["seen"])
            if r:
                samples[name].append(us)
    setup("proc")
    base = samples["otel"]
    print(f"{'case':16} {'us/req':>8} {'minus otel (median of rounds)':>30}")
    for name, vals in samples.items():
        diff = statistics.median(v - b for v, b in zip(vals, base, strict=False))
        print(f"{name:16} {statistics.median(vals):8.1f} {diff:30.1f}")
    p1.shutdown()
    p2.shutdown()
    if ingest_proc is not None:
        ingest_proc.terminate()


if __name__ == "__main__":
    main()
