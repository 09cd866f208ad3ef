"""Every variant of one way in, in one process: the section "1c" of ``run.py``.

    python benchmarks/_one_process.py --framework raw_asgi --way provider \
        --ingest URL --storage DIR --requests 500 --rounds 20

Between processes of the same code the CPU per request differs by more than what is
measured (see ``run.py``), and the variants of ``_worker.py`` each run in a process of
their own. Here the bare app (a), the ``peekapi`` middleware (d), OpenTelemetry alone (b),
the ``peekapi`` middleware inside OpenTelemetry (d2) and the way in (c) are built side by
side in one process and driven in interleaved rounds, so that offset cancels.

Only what can share a process is here: ``configure()`` and a processor on the user's own
provider, on raw ASGI, raw WSGI and Flask. OpenTelemetry alone gets its own
``TracerProvider`` passed to the instrumentation, built (and its middleware built) before
any PeekAPI processor exists, so it carries none of peekapi-otel's layers. Zero code
(``opentelemetry-instrument`` instruments the whole process) and Django (its instrumentor
is global) stay in ``_worker.py``, and so does FastAPI: ``FastAPIInstrumentor.instrument_app``
on one app also instruments the FastAPI apps already built (instrumentation 0.66b1), so
the bare app would run OpenTelemetry too.

Prints one line: ``@@`` and ``{"us": {variant: [CPU us per request, per round]}, ...}``.
CPU is ``time.process_time()`` (all threads) from the start of a round until the ingest
acknowledged what it produced, as in ``_worker.py``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _apps import (
    API_KEY,
    driver_for,
    instrumented_app,
    new_app,
    peekapi_drain,
    readme_hooks,
    with_peekapi,
)

FRAMEWORKS = ("raw_asgi", "raw_wsgi", "flask")
WAYS = ("configure", "provider")
VARIANTS = ("bare", "peekapi", "otel", "peekapi_otel", "ours")


def build(
    framework: str, way: str, ingest: str, storage: str
) -> tuple[dict[str, Any], dict[str, Callable[[], None]], list[Any]]:
    """Drivers and drains per variant, and what to shut down."""
    from opentelemetry.sdk.trace import TracerProvider
    from peekapi import PeekApiClient

    def client(name: str) -> Any:
        path = os.path.join(storage, f"{name}.jsonl")
        return PeekApiClient({"api_key": API_KEY, "endpoint": ingest, "storage_path": path})

    alone, inside = client("peekapi"), client("peekapi-otel")
    apps = {
        "bare": new_app(framework),
        "peekapi": with_peekapi(framework, new_app(framework), alone),
        "otel": instrumented_app(framework, new_app(framework), tracer_provider=TracerProvider()),
        "peekapi_otel": instrumented_app(
            framework,
            with_peekapi(framework, new_app(framework), inside),
            tracer_provider=TracerProvider(),
        ),
    }
    drivers = {name: driver_for(framework, app) for name, app in apps.items()}
    for driver in drivers.values():
        driver.run(1)
    # From here on PeekAPI exists in the process; the apps above keep what they have.
    kwargs = readme_hooks(framework)
    processor: Any
    if way == "provider":
        from peekapi_otel import PeekApiSpanProcessor

        provider = TracerProvider()
        processor = PeekApiSpanProcessor(api_key=API_KEY, endpoint=ingest, storage_path=storage)
        provider.add_span_processor(processor)
        kwargs["tracer_provider"] = provider
    else:
        import peekapi_otel

        processor = peekapi_otel.configure(api_key=API_KEY, endpoint=ingest, storage_path=storage)
    ours = instrumented_app(framework, new_app(framework), **kwargs)
    drivers["ours"] = driver_for(framework, ours)
    drivers["ours"].run(1)
    drains: dict[str, Callable[[], None]] = {
        "bare": lambda: None,
        "otel": lambda: None,
        "peekapi": peekapi_drain(alone),
        "peekapi_otel": peekapi_drain(inside),
        "ours": lambda: processor.force_flush(30_000),
    }
    return drivers, drains, [alone, inside, processor]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--framework", choices=FRAMEWORKS, required=True)
    ap.add_argument("--way", choices=WAYS, required=True)
    ap.add_argument("--ingest", required=True)
    ap.add_argument("--storage", required=True)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--offset", type=int, default=0, help="first variant of the rotation")
    args = ap.parse_args()

    drivers, drains, owned = build(args.framework, args.way, args.ingest, args.storage)
    n = args.requests
    us: dict[str, list[float]] = {v: [] for v in VARIANTS}
    ok = True
    process_time = time.process_time
    for r in range(-args.warmup, args.rounds):
        k = (r + args.offset) % len(VARIANTS)
        for v in VARIANTS[k:] + VARIANTS[:k]:
            gc.collect()
            c0 = process_time()
            drivers[v].run(n)
            drains[v]()
            c1 = process_time()
            driver = drivers[v]
            ok = ok and (driver.ok() if hasattr(driver, "ok") else driver.status == 200)
            if r >= 0:
                us[v].append((c1 - c0) / n * 1e6)
    for thing in owned:
        thing.shutdown()
    # Events sent per variant that reach the ingest (the warm-up request included).
    sent = (args.warmup + args.rounds) * n + 1
    result = {"us": us, "ok": ok, "events_per_sender": sent, "pid": os.getpid()}
    print("@@" + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
