"""A Flask app with httpbin-style streamed and chunked endpoints, for the zero-code tests:
``GET /stream-bytes/<n>?chunk_size=<k>`` streams ``n`` bytes in chunks of ``k``, and
``POST /echo-size`` answers with the number of body bytes it read."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Flask, Response, request

app = Flask(__name__)


@app.get("/stream-bytes/<int:n>")
def stream_bytes(n: int) -> Response:
    chunk_size = request.args.get("chunk_size", 10240, type=int)

    def chunks() -> Iterator[bytes]:
        left = n
        while left > 0:
            size = min(chunk_size, left)
            left -= size
            yield b"x" * size

    return Response(chunks(), content_type="application/octet-stream")


@app.post("/echo-size")
def echo_size() -> str:
    return str(len(request.get_data()))
