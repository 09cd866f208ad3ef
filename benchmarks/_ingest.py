"""A minimal loopback PeekAPI ingest for the benchmarks (run as its own process).

``python benchmarks/_ingest.py`` prints its port on stdout, then answers every
``POST`` with ``200 {"ok":true}`` (HTTP/1.1 keep-alive, like a real ingest) and counts the
events in each JSON array body. ``GET /count`` returns ``{"events": N, "posts": M}``.
Nothing is stored, so a long run does not grow the ingest's memory.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_lock = threading.Lock()
_counts = {"events": 0, "posts": 0, "bad": 0}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: without this, Nagle holds the body until the
    # client's delayed ACK (40 ms a reply).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        with _lock:
            body = json.dumps(_counts).encode()
        self._reply(200, body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            events = json.loads(raw)
            n = len(events) if isinstance(events, list) else 0
            bad = 0
        except ValueError:
            n, bad = 0, 1
        with _lock:
            _counts["events"] += n
            _counts["posts"] += 1
            _counts["bad"] += bad
        self._reply(200, b'{"ok":true}')


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main() -> None:
    server = _Server(("127.0.0.1", 0), _Handler)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever(0.1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
