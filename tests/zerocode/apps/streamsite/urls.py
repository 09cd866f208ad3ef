"""``GET /stream-bytes/<n>?chunk_size=<k>`` streams ``n`` bytes (``StreamingHttpResponse``);
``POST /echo-size`` answers with the number of body bytes the view read."""

from __future__ import annotations

from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path


def stream_bytes(request: HttpRequest, n: int) -> StreamingHttpResponse:
    chunk_size = int(request.GET.get("chunk_size", "10240"))

    def chunks() -> Iterator[bytes]:
        left = n
        while left > 0:
            size = min(chunk_size, left)
            left -= size
            yield b"x" * size

    return StreamingHttpResponse(chunks(), content_type="application/octet-stream")


def echo_size(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(len(request.body)))


urlpatterns = [
    path("stream-bytes/<int:n>", stream_bytes),
    path("echo-size", echo_size),
]
