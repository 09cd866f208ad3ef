"""Client CPU per POST: our HTTP/1.1 client against ``http.client``, same loopback ingest.

Both keep one connection alive, set TCP_NODELAY, and (on Linux) TCP_QUICKACK before
each read, and POST the same 100-event body to ``benchmarks/_ingest.py`` running in its
own process, so only the client's CPU is counted (``time.process_time``). Rounds
alternate AB, BA, ... Prints the median microseconds per POST for each client.

    python benchmarks/experiments/transport_cost.py [--posts 2000] [--rounds 6]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "src"))

from peekapi_otel.delivery import HttpTransport, SendResult  # noqa: E402

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class StdlibTransport:
    """What ``HttpTransport`` would be on ``http.client``."""

    def __init__(self, endpoint: str, api_key: str) -> None:
        parts = urlsplit(endpoint)
        self._path = parts.path
        self._conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80)
        self._headers = {
            "Content-Type": "application/json",
            "x-api-key": api_key,
            "x-peekapi-sdk": "python-otel/bench",
            "Accept-Encoding": "identity",
        }

    def send(self, body: bytes, timeout: float) -> SendResult:
        conn = self._conn
        try:
            if conn.sock is None:
                conn.timeout = timeout
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.request("POST", self._path, body, self._headers)
            if _QUICKACK is not None:
                conn.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            response = conn.getresponse()
            excerpt = response.read()[:300].decode("utf-8", "replace")
            return SendResult(status=response.status, excerpt=excerpt)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            return SendResult(error=f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        self._conn.close()


def body() -> bytes:
    event = {
        "method": "GET",
        "path": "/items/{item_id}",
        "status_code": 200,
        "response_time_ms": 1.23,
        "request_size": 0,
        "response_size": 321,
        "consumer_id": "hash_0123456789abcdef",
        "metadata": {"trace_id": "0" * 32, "span_id": "0" * 16},
        "timestamp": "2026-12-03T08:00:00.123456+00:00",
    }
    return json.dumps([event] * 100, separators=(",", ":")).encode()


def per_post(transport: HttpTransport | StdlibTransport, payload: bytes, posts: int) -> float:
    for _ in range(50):  # warm: connection, caches
        assert transport.send(payload, 5.0).ok
    start = time.process_time()
    for _ in range(posts):
        transport.send(payload, 5.0)
    return (time.process_time() - start) / posts * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    ingest = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "..", "_ingest.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert ingest.stdout is not None
        url = f"http://127.0.0.1:{int(ingest.stdout.readline())}/v1/events"
        payload = body()
        results: dict[str, list[float]] = {"own": [], "http.client": []}
        for i in range(args.rounds):
            order = ["own", "http.client"] if i % 2 == 0 else ["http.client", "own"]
            for name in order:
                client = HttpTransport(url, "k") if name == "own" else StdlibTransport(url, "k")
                try:
                    results[name].append(per_post(client, payload, args.posts))
                finally:
                    client.close()
        for name, values in results.items():
            print(f"{name:12s} {statistics.median(values):7.1f} us CPU per POST  {values}")
    finally:
        ingest.terminate()
        ingest.wait(10)


if __name__ == "__main__":
    main()
