#!/usr/bin/env python
"""Micro-benchmarks behind the profile suggestions: current code vs a candidate, side by
side in interleaved rounds (median of per-round ratios). Candidates live here only; they
are sketches of the suggested change, checked for identical output where that matters.

    python benchmarks/micro.py [--rounds 15] [--calls 20000]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def real_span() -> Any:
    from _throughput import record_spans

    return record_spans(3)[-1]


def bench(pairs: dict[str, tuple[Any, Any]], rounds: int, calls: int) -> None:
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in pairs}
    for r in range(rounds):
        for name, (cur, cand) in pairs.items():
            order = [(0, cur), (1, cand)] if r % 2 == 0 else [(1, cand), (0, cur)]
            t = [0.0, 0.0]
            for idx, fn in order:
                c0 = time.process_time()
                for _ in range(calls):
                    fn()
                t[idx] = (time.process_time() - c0) / calls * 1e6
            results[name].append((t[0], t[1]))
    w = max(len(k) for k in pairs)
    print(f"{'case'.ljust(w)}  current us  candidate us  saved us  candidate/current [p25,p75]")
    for name, rows in results.items():
        cur = statistics.median(a for a, _ in rows)
        cand = statistics.median(b for _, b in rows)
        ratios = [b / a for a, b in rows]
        p25, p50, p75 = statistics.quantiles(ratios, n=4, method="inclusive")
        print(
            f"{name.ljust(w)}  {cur:10.2f}  {cand:12.2f}  {cur - cand:8.2f}  "
            f"{p50:.2f} [{p25:.2f}, {p75:.2f}]"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=20000)
    args = ap.parse_args()

    from opentelemetry.attributes import BoundedAttributes
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import DEFAULT_ON
    from opentelemetry.trace import SpanKind

    from peekapi_otel.core import _events
    from peekapi_otel.core._guard import guard
    from peekapi_otel.otel import _credentials
    from peekapi_otel.otel._sampling import ServerRecordOnly

    span = real_span()

    # 1. span_to_event reading attributes through MappingProxy(BoundedAttributes) (every
    #    .get/.__contains__ is Python-level Mapping code, a miss raises KeyError) vs the
    #    same function given the plain dict underneath (span._attributes._dict).
    class PlainView:
        __slots__ = ("attributes", "context", "end_time", "events", "name", "start_time", "status")

        def __init__(self, s: Any) -> None:
            self.attributes = s._attributes._dict
            self.name, self.start_time, self.end_time = s.name, s.start_time, s.end_time
            self.context, self.status, self.events = s.context, s.status, s.events

    plain = PlainView(span)
    assert _events.span_to_event(span) == _events.span_to_event(plain)  # type: ignore[arg-type]

    # 2. timestamp(): datetime per call vs a per-second cached prefix.
    cache: list[Any] = [None, ""]

    def fast_timestamp(ns: int) -> str:
        seconds, rem = divmod(ns, 1_000_000_000)
        if cache[0] != seconds:
            cache[0] = seconds
            cache[1] = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%S"
            )
        us = rem // 1000
        return f"{cache[1]}.{us:06d}+00:00" if us else f"{cache[1]}+00:00"

    for ns in (span.start_time, 1_700_000_000_000_000_000, 1_700_000_000_000_999_999):
        assert fast_timestamp(ns) == _events.timestamp(ns), (
            fast_timestamp(ns),
            _events.timestamp(ns),
        )

    # 3. encode_event: json.JSONEncoder vs an f-string template (strings via json's C
    #    string encoder; metadata/unknown values still via the encoder).
    from json.encoder import encode_basestring  # C accelerated; ensure_ascii=False form

    event = _events.span_to_event(span)

    def fast_encode(e: dict[str, Any]) -> bytes:
        enc = encode_basestring
        cid = e["consumer_id"]
        meta = e["metadata"]
        meta_s = "null"
        if meta is not None:
            if len(meta) == 2 and "trace_id" in meta:
                meta_s = f'{{"trace_id":"{meta["trace_id"]}","span_id":"{meta["span_id"]}"}}'
            else:
                meta_s = _events._ENCODER.encode(meta)
        return (
            f'{{"method":{enc(e["method"])},"path":{enc(e["path"])},'
            f'"status_code":{e["status_code"]},"response_time_ms":{float(e["response_time_ms"])!r},'
            f'"request_size":{e["request_size"]},"response_size":{e["response_size"]},'
            f'"consumer_id":{"null" if cid is None else enc(cid)},"metadata":{meta_s},'
            f'"timestamp":{enc(e["timestamp"])}}}'
        ).encode("utf-8", "surrogateescape")

    assert fast_encode(event) == _events.encode_event(event, 65536)

    # 4. Attribute writes on a guarded SERVER span vs a plain one (16 sets per request).
    guarded = BoundedAttributes(128, immutable=False)
    guarded.__class__ = _credentials._GuardedAttributes
    unguarded = BoundedAttributes(128, immutable=False)
    keys = [f"http.attr{i}" for i in range(16)]

    def set16(a: Any) -> None:
        for k in keys:
            a[k] = "v"

    # 5. Sampler: ServerRecordOnly(ParentBased(ALWAYS_ON)) vs the inner sampler alone.
    wrapped = ServerRecordOnly(DEFAULT_ON)

    # 6. `with guard:` vs try/except in a 4-per-request callback.
    def with_guard() -> None:
        with guard:
            pass

    def with_try() -> None:
        try:
            pass
        except Exception:  # noqa: BLE001
            pass

    # 7. hash_consumer: sha256 per request vs an LRU of recent credentials.
    import functools

    cached_hash = functools.lru_cache(maxsize=1024)(_events.hash_consumer)
    key = "consumer-key-123456"

    # 8. The whole request-thread conversion: span_to_event + encode_event vs one fast
    #    function over the plain attribute dict (common case: str method/path/route,
    #    int status, our peekapi.* sizes and consumer; anything unusual falls back).
    from opentelemetry.trace import StatusCode

    def fast_line(s: Any) -> bytes | None:
        a = getattr(s._attributes, "_dict", None)
        if a is None:
            return None
        method = a.get("http.request.method") or a.get("http.method")
        route = a.get("http.route")
        status = a.get("http.response.status_code") or a.get("http.status_code")
        if (
            type(method) is not str
            or method == "_OTHER"
            or type(route) is not str
            or not route.startswith("/")
            or type(status) is not int
        ):
            return None  # slow path: current span_to_event
        req = a.get("peekapi.request_size", 0)
        resp = a.get("peekapi.response_size", 0)
        cid = a.get("peekapi.consumer_id")
        ctx = s.context
        start = s.start_time
        ms = round(max(s.end_time - start, 0) / 1e6, 2)
        return (
            f'{{"method":{encode_basestring(method.upper()[:16])},"path":{encode_basestring(route[:2048])},'
            f'"status_code":{status},"response_time_ms":{ms!r},'
            f'"request_size":{req if type(req) is int and req >= 0 else 0},'
            f'"response_size":{resp if type(resp) is int and resp >= 0 else 0},'
            f'"consumer_id":{encode_basestring(cid[:256]) if cid else "null"},'
            f'"metadata":{{"trace_id":"{ctx.trace_id:032x}","span_id":"{ctx.span_id:016x}"}},'
            f'"timestamp":"{fast_timestamp(start)}"}}'
        ).encode("utf-8", "surrogateescape")

    assert fast_line(span) == _events.encode_event(_events.span_to_event(span), 65536), (
        fast_line(span),
        _events.encode_event(_events.span_to_event(span), 65536),
    )
    _ = StatusCode

    tp = TracerProvider()
    _ = tp  # keep the SDK initialised like in an app
    pairs = {
        "span->event line: fast path": (
            lambda: _events.encode_event(_events.span_to_event(span), 65536),
            lambda: fast_line(span),
        ),
        "span_to_event: proxy -> plain dict": (
            lambda: _events.span_to_event(span),
            lambda: _events.span_to_event(plain),  # type: ignore[arg-type]
        ),
        "timestamp(): cached second prefix": (
            lambda: _events.timestamp(span.start_time),
            lambda: fast_timestamp(span.start_time),
        ),
        "encode_event: f-string template": (
            lambda: _events.encode_event(event, 65536),
            lambda: fast_encode(event),
        ),
        "16 attr writes: guarded -> plain": (lambda: set16(guarded), lambda: set16(unguarded)),
        "should_sample: wrapped -> inner": (
            lambda: wrapped.should_sample(None, 0x1234, "GET", SpanKind.SERVER, {"a": 1}),
            lambda: DEFAULT_ON.should_sample(None, 0x1234, "GET", SpanKind.SERVER, {"a": 1}),
        ),
        "with guard -> try/except": (with_guard, with_try),
        "hash_consumer -> lru_cache": (
            lambda: _events.hash_consumer(key),
            lambda: cached_hash(key),
        ),
    }
    _ = hashlib
    bench(pairs, args.rounds, args.calls)


if __name__ == "__main__":
    main()
