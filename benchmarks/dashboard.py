"""Dashboard API latency over 1,000,000 stored events, and ingest while dashboards poll.

    python benchmarks/dashboard.py                      # 1,000,000 events (a few minutes)
    python benchmarks/dashboard.py --events 20000       # a smoke run
    python benchmarks/dashboard.py --db /tmp/big.db     # reuse a database built before

1. Builds a database of ``--events`` events spread over the last 7 days (20 endpoints,
   200 consumers with a few endpoints each, 2 % 5xx, 1 % unmatched 404s from a scanner,
   log-normal latencies), through the store's own insert path (rollups included).
2. Starts ``peekapi-otel serve`` on it and times each dashboard API call (median and max
   of ``--repeat`` calls, over HTTP on loopback).
3. Ingest under load: sender threads post batches of 100 fresh events for ``--seconds``
   while ``--pollers`` dashboards each ask for the summary, the endpoint view and the
   consumer view every 2 s and hold the live stream open; reports stored events/s.

The machine is shared: the figures are what this run saw, printed with the load average.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from peekapi_otel.server._store import EventStore, validate_batch

ROUTES = [
    ("GET", "/items/{item_id}"),
    ("GET", "/items"),
    ("POST", "/orders"),
    ("GET", "/orders/{order_id}"),
    ("GET", "/users/{user_id}"),
    ("PUT", "/users/{user_id}"),
    ("GET", "/search"),
    ("GET", "/health"),
    ("DELETE", "/items/{item_id}"),
    ("POST", "/login"),
] + [("GET", f"/reports/{i}/{{id}}") for i in range(10)]
CONSUMERS = [f"c{i:03d}" for i in range(200)]


def _iso(second: float) -> str:
    return datetime.fromtimestamp(second, timezone.utc).isoformat()


def _event(rng: random.Random, n: int, at: float) -> dict[str, Any]:
    consumer: str | None = rng.choice(CONSUMERS)
    index = (int(consumer[1:]) * 7 + rng.randrange(5)) % len(ROUTES)  # type: ignore[index]
    method, path = ROUTES[index]
    status = 200
    roll = rng.random()
    if roll < 0.02:
        status = 500
    elif roll < 0.03:
        method, path, status, consumer = "GET", f"/wp-admin/{rng.randrange(5000)}", 404, None
    elif roll < 0.08:
        status = 400
    return {
        "method": method,
        "path": path,
        "status_code": status,
        "response_time_ms": round(rng.lognormvariate(2.5 + index / 10, 0.7), 3),
        "request_size": 0,
        "response_size": 512,
        "consumer_id": consumer,
        "metadata": {"trace_id": f"{n:032x}", "span_id": f"{n:016x}"},
        "timestamp": _iso(at),
    }


def build(db: Path, events: int, now: float) -> None:
    store = EventStore(db)
    have = store.count()
    rng = random.Random(1)
    span = 7 * 86400
    started = time.perf_counter()
    batch = 500
    for first in range(have, events, batch):
        rows = validate_batch(
            [
                _event(rng, n, now - span + span * n / events)
                for n in range(first, min(events, first + batch))
            ]
        )
        store.insert_rows(rows)
    seconds = time.perf_counter() - started
    if events > have:
        rate = (events - have) / seconds
        print(f"built {events - have} events in {seconds:.1f} s ({rate:,.0f} events/s, direct)")
    store.close()


def _get(port: int, path: str) -> tuple[float, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return time.perf_counter() - started, response.status
    finally:
        conn.close()


def calls() -> list[str]:
    endpoint = "method=GET&path=" + quote("/items/{item_id}")
    out = []
    for r in ("15m", "1h", "24h", "7d"):
        out += [
            f"/api/summary?range={r}",
            f"/api/endpoint?range={r}&{endpoint}",
            f"/api/consumer?range={r}&consumer=c007",
        ]
    out += [
        "/api/summary",
        "/api/summary?range=7d&consumer=c007",
        "/api/summary?range=7d&status=5xx",
        f"/api/summary?range=24h&{endpoint}",
        "/api/summary?range=7d&path=" + quote("unmatched (404)"),
    ]
    return out


def start_serve(db: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "peekapi_otel.server._cli", "serve", "--port", "0", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    port = int(line.split("http://127.0.0.1:")[1].split(" ")[0])
    return proc, port


def time_calls(port: int, repeat: int) -> list[tuple[str, float, float]]:
    out = []
    for path in calls():
        _get(port, path)  # warm the page cache once
        times = []
        for _ in range(repeat):
            seconds, status = _get(port, path)
            assert status == 200, (path, status)
            times.append(seconds * 1000)
        out.append((path, statistics.median(times), max(times)))
    return out


def _sender(port: int, bodies: list[bytes], stop: float, stored: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    for body in bodies:
        if time.monotonic() > stop:
            break
        conn.request("POST", "/v1/events", body=body, headers=headers)
        response = conn.getresponse()
        answer = json.loads(response.read())
        stored[0] += int(answer.get("accepted", 0))
    conn.close()


def _poller(port: int, stop: float, worst: list[float], streamed: list[int]) -> None:
    stream = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    stream.request("GET", "/api/stream")
    live = stream.getresponse()

    def read_stream() -> None:
        try:
            while time.monotonic() < stop:
                line = live.fp.readline()
                if not line:
                    return
                if line.startswith(b"data: "):
                    streamed[0] += len(json.loads(line[6:]))  # one message per batch
        except OSError:
            return

    reader = threading.Thread(target=read_stream, daemon=True)
    reader.start()
    endpoint = "method=GET&path=" + quote("/items/{item_id}")
    while time.monotonic() < stop:
        for path in ("/api/summary?range=1h", f"/api/endpoint?range=1h&{endpoint}"):
            seconds, _ = _get(port, path)
            worst[0] = max(worst[0], seconds * 1000)
        time.sleep(2)
    stream.close()


def ingest_under_polling(port: int, seconds: float, pollers: int, senders: int) -> None:
    rng = random.Random(2)
    now = time.time()
    base = time.time_ns()  # trace ids no earlier run used
    per_sender = int(seconds * 20000 / 100 / senders) + 1
    plans = [
        [
            json.dumps(
                [
                    _event(
                        rng,
                        base + (s * per_sender + b) * 100 + i,
                        now + (s * per_sender + b) * 100 / (8000 / senders),
                    )
                    for i in range(100)
                ]
            ).encode()
            for b in range(per_sender)
        ]
        for s in range(senders)
    ]
    stop = time.monotonic() + seconds
    worst, streamed = [0.0], [0]
    threads = [
        threading.Thread(target=_poller, args=(port, stop, worst, streamed), daemon=True)
        for _ in range(pollers)
    ]
    stored = [[0] for _ in range(senders)]
    started = time.monotonic()
    for t in threads:
        t.start()
    workers = [
        threading.Thread(target=_sender, args=(port, plans[s], stop, stored[s]))
        for s in range(senders)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - started
    total = sum(s[0] for s in stored)
    print(
        f"ingest with {pollers} dashboards polling: {total} events in {elapsed:.1f} s = "
        f"{total / elapsed:,.0f} events/s stored; slowest poll {worst[0]:.0f} ms; "
        f"{streamed[0]} events streamed to the dashboards"
    )
    for t in threads:
        t.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/peekapi-dashboard-bench.db"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--pollers", type=int, default=4)
    parser.add_argument("--senders", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores")
    build(args.db, args.events, time.time())
    proc, port = start_serve(args.db)
    try:
        print(f"{'call':<70} {'median ms':>9} {'max ms':>7}")
        for path, median, worst in time_calls(port, args.repeat):
            print(f"{path:<70} {median:9.1f} {worst:7.1f}")
        ingest_under_polling(port, args.seconds, args.pollers, args.senders)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
