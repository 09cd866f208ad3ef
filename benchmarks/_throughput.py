"""Export throughput: events per client CPU-second, span end -> acknowledged by the ingest.

Both exporters live in this one process and run interleaved rounds (pairs ordered
AB, BA, AB, ...), so each round's ratio compares them under the same machine conditions.

* ours: real ``ReadableSpan``s (recorded from an instrumented FastAPI app with the
  PeekAPI hooks, so they carry exactly the attributes the zero-code path produces) are
  fed to ``PeekApiSpanProcessor.on_end``, then ``force_flush()`` waits for the acks.
* peekapi: the same requests as the dicts its ASGI middleware passes to
  ``PeekApiClient.track()``, then its flush loop until nothing is buffered or in flight.

CPU is ``time.process_time()`` of the process: the caller plus the exporters' threads.
Prints one ``@@{json}`` line.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import urllib.request
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _apps import API_KEY, CONSUMER_KEY, AsgiDriver, fastapi_app, peekapi_drain


def record_spans(n: int) -> list[Any]:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    from peekapi_otel.core._record import is_request_span
    from peekapi_otel.hooks import instrumentor_kwargs
    from peekapi_otel.otel._asgi import install_asgi_counter

    spans: list[Any] = []

    class Collect(SpanProcessor):
        def on_end(self, span: Any) -> None:
            if is_request_span(span):
                spans.append(span)

    # As a PeekAPI processor does when it is created: OTel ASGI middlewares built from
    # now on count the consumer and the bytes, so the spans carry what production has.
    install_asgi_counter()
    provider = TracerProvider()
    provider.add_span_processor(Collect())
    app = fastapi_app()
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, **instrumentor_kwargs("fastapi")
    )
    AsgiDriver(app).run(n)
    return spans


def peekapi_event(span: Any) -> dict[str, Any]:
    """What ``PeekApiASGI`` passes to ``track()`` for the same request."""
    a = span.attributes
    return {
        "method": a.get("http.method", "GET"),
        "path": a.get("http.target", "/"),
        "status_code": a.get("http.status_code", 200),
        "response_time_ms": round((span.end_time - span.start_time) / 1e6, 2),
        "request_size": 0,
        "response_size": a.get("peekapi.response_size", 0),
        "consumer_id": CONSUMER_KEY,  # peekapi 0.1.0 sends the raw x-api-key
    }


def ingest_count(url: str) -> int:
    base = url.rsplit("/v1/", 1)[0]
    with urllib.request.urlopen(base + "/count", timeout=5) as r:
        return int(json.loads(r.read())["events"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ingest", required=True)
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch-size", type=int, default=100)
    args = ap.parse_args()

    from peekapi import PeekApiClient

    import peekapi_otel
    from peekapi_otel import PeekApiSpanProcessor

    spans = record_spans(args.events)
    events = [peekapi_event(s) for s in spans]
    tmp = tempfile.mkdtemp(prefix="peekapi-bench-tp-")
    ours = PeekApiSpanProcessor(
        api_key=API_KEY, endpoint=args.ingest, storage_path=tmp, batch_size=args.batch_size
    )
    client = PeekApiClient(
        {
            "api_key": API_KEY,
            "endpoint": args.ingest,
            "batch_size": args.batch_size,
            "storage_path": os.path.join(tmp, "peekapi.jsonl"),
        }
    )
    drain = peekapi_drain(client)
    on_end, track = ours.on_end, client.track

    def run_ours() -> float:
        c0 = time.process_time()
        for s in spans:
            on_end(s)
        ours.force_flush(60_000)
        return time.process_time() - c0

    def run_peekapi() -> float:
        c0 = time.process_time()
        for e in events:
            track(e)
        drain()
        return time.process_time() - c0

    before = ingest_count(args.ingest)
    run_ours(), run_peekapi()  # warm-up (connections, code paths)
    samples: list[dict[str, float]] = []
    for i in range(args.rounds):
        gc.collect()
        order = [("ours", run_ours), ("peekapi", run_peekapi)]
        if i % 2:
            order.reverse()
        row: dict[str, float] = {}
        for name, fn in order:
            row[name] = fn()
            gc.collect()
        samples.append(row)
    after = ingest_count(args.ingest)
    snap = peekapi_otel.stats()
    ours.shutdown()
    client.shutdown()
    expected = 2 * len(spans) * (args.rounds + 1)
    print(
        "@@"
        + json.dumps(
            {
                "events_per_round": len(spans),
                "batch_size": args.batch_size,
                "samples_cpu_s": samples,
                "ingest_events_received": after - before,
                "ingest_events_expected": expected,
                "ours_stats": {k: snap.get(k) for k in ("seen", "sent", "dropped_total")},
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
