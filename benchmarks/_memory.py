"""Memory and loss under pressure: a burst of events with the ingest down (connection
refused). One variant per process; prints one ``@@{json}`` line.

* ``ours``: a ``TracerProvider`` with a ``PeekApiSpanProcessor`` (a tmp ``storage_path``);
  each event is a real SERVER span started and ended with the attributes the ASGI
  instrumentation and our hooks put on it. After the burst:
  ``force_flush`` then ``provider.shutdown()``. lost = N - (sent + spooled) from
  ``peekapi_otel.stats()``; the spool is also counted on disk.
* ``peekapi``: ``PeekApiClient`` (defaults, tmp ``storage_path``) and ``track()`` of the
  dict its ASGI middleware builds; then ``shutdown()``. lost = N - events found in its
  JSONL file(s) (nothing can be sent: the ingest is down).

Peak RSS growth = VmHWM at the end - VmRSS just before the burst. The kernel's peak is
reset before the burst (``/proc/self/clear_refs`` = 5) when allowed; a 5 ms VmRSS sampler
thread is the fallback and a cross-check.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import sys
import tempfile
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _apps import API_KEY, CONSUMER_KEY


def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.005):
            self.peak = max(self.peak, status_kb("VmRSS"))


def dead_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/events"  # nothing listens: connection refused


def run_ours(n: int, storage: str, endpoint: str, flush_s: float) -> dict[str, Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanKind

    import peekapi_otel
    from peekapi_otel.core._hashing import hash_consumer

    provider = TracerProvider()
    processor = peekapi_otel.PeekApiSpanProcessor(
        api_key=API_KEY, endpoint=endpoint, storage_path=storage
    )
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    consumer = hash_consumer(CONSUMER_KEY)

    def one(i: int) -> None:
        target = f"/items/{i}"
        span = tracer.start_span(
            "GET /items/{item_id}",
            kind=SpanKind.SERVER,
            attributes={
                "http.scheme": "http",
                "http.host": "127.0.0.1:8000",
                "net.host.port": 8000,
                "http.flavor": "1.1",
                "http.target": target,
                "http.url": "http://127.0.0.1:8000" + target + "?q=1",
                "http.method": "GET",
                "http.server_name": "bench.local:8000",
                "http.user_agent": "bench/1.0",
                "net.peer.ip": "127.0.0.1",
                "net.peer.port": 50123,
                "http.route": "/items/{item_id}",
            },
        )
        span.set_attributes({"peekapi.consumer_id": consumer, "peekapi.request_size": 0})
        span.set_attributes({"http.status_code": 200, "peekapi.response_size": 17})
        span.end()

    for i in range(200):  # warm-up
        one(i)
    processor.force_flush(2_000)
    base_stats = peekapi_otel.stats()

    def burst() -> None:
        for i in range(n):
            one(i)

    def finish() -> None:
        processor.force_flush(int(flush_s * 1000))
        provider.shutdown()

    result = measure(burst, finish)
    snap = peekapi_otel.stats()
    delta = {
        k: int(snap.get(k, 0) or 0) - int(base_stats.get(k, 0) or 0)  # type: ignore[call-overload]
        for k in ("seen", "sent", "spooled", "dropped_total")
    }
    dropped = {
        k: v - base_stats["dropped"].get(k, 0)  # type: ignore[index,union-attr]
        for k, v in snap["dropped"].items()  # type: ignore[union-attr]
        if v - base_stats["dropped"].get(k, 0)  # type: ignore[index,union-attr]
    }
    on_disk = spool_lines(storage)
    result.update(
        {
            "sent": delta["sent"],
            "spooled": delta["spooled"],
            "dropped": dropped,
            "lost": n - (delta["sent"] + delta["spooled"]),
            "events_on_disk": on_disk,
            "stats_delta": delta,
        }
    )
    return result


def spool_lines(root: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.startswith("seg-"):
                with open(os.path.join(dirpath, name), "rb") as f:
                    total += sum(1 for line in f if line.strip())
    return total


def run_peekapi(n: int, storage: str, endpoint: str) -> dict[str, Any]:
    from peekapi import PeekApiClient

    path = os.path.join(storage, "peekapi.jsonl")
    client = PeekApiClient({"api_key": API_KEY, "endpoint": endpoint, "storage_path": path})

    def event(i: int) -> dict[str, Any]:
        return {
            "method": "GET",
            "path": f"/items/{i}",
            "status_code": 200,
            "response_time_ms": 0.42,
            "request_size": 0,
            "response_size": 17,
            "consumer_id": CONSUMER_KEY,
        }

    def burst() -> None:
        track = client.track
        for i in range(n):
            track(event(i))

    result = measure(burst, client.shutdown)
    on_disk = 0
    for p in (path, path + ".recovering"):
        if os.path.exists(p):
            with open(p) as f:
                for line in f:
                    if line.strip():
                        data = json.loads(line)
                        on_disk += len(data) if isinstance(data, list) else 1
    result.update({"sent": 0, "spooled": on_disk, "events_on_disk": on_disk, "lost": n - on_disk})
    return result


def measure(burst: Any, finish: Any) -> dict[str, Any]:
    gc.collect()
    sampler = Sampler()
    sampler.start()
    time.sleep(0.02)
    reset_ok = reset_peak()
    base = status_kb("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    burst()
    t1 = time.perf_counter()
    finish()
    t2, c2 = time.perf_counter(), time.process_time()
    time.sleep(0.02)
    sampler.stop.set()
    sampler.join()
    hwm = status_kb("VmHWM")
    growth_hwm = hwm - base if reset_ok else None
    growth_sampled = sampler.peak - base
    return {
        "rss_before_kb": base,
        "peak_hwm_kb": hwm,
        "peak_reset": reset_ok,
        "growth_kb": growth_hwm if growth_hwm is not None else growth_sampled,
        "growth_sampled_kb": growth_sampled,
        "burst_s": round(t1 - t0, 3),
        "finish_s": round(t2 - t1, 3),
        "cpu_s": round(c2 - c0, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", choices=("ours", "peekapi"), required=True)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--flush-timeout", type=float, default=15.0)
    args = ap.parse_args()
    storage = tempfile.mkdtemp(prefix=f"peekapi-bench-mem-{args.variant}-")
    endpoint = dead_endpoint()
    if args.variant == "ours":
        result = run_ours(args.events, storage, endpoint, args.flush_timeout)
    else:
        result = run_peekapi(args.events, storage, endpoint)
    result.update({"variant": args.variant, "events": args.events, "storage": storage})
    print("@@" + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
