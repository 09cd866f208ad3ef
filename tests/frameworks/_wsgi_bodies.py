"""Streamed responses and unannounced request bodies on every WSGI path, behind a real
server (Werkzeug's, threaded: it takes chunked request bodies); a JSON report on stdout.

Run in its own process (the Django instrumentor is a process-wide singleton)::

    python _wsgi_bodies.py FRAMEWORK

FRAMEWORK is ``flask``, ``django`` or ``raw_wsgi``, or ``django_asgi`` (the Django app
under uvicorn: chunked request bodies only, since Django reads a synchronous streamed body
whole before an ASGI server sends it). Events come from ``capture_events``; an in-memory
exporter beside it shows each server span's end time and status.
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from peekapi_otel.hooks import instrumentor_kwargs
from peekapi_otel.testing import capture_events

CHUNK = b"s" * 500
STREAM = 6  # chunks: 3,000 bytes
UPLOAD = bytes(range(256)) * 15 + b"\n" * 160  # 4,000 bytes, some lines
BIG = b"b" * 65536
BIG_CHUNKS = 200  # far more than any socket buffer holds
TEXT = "é" * 100  # 200 bytes in UTF-8

#: Set by the client once it has closed its end of the ``/disconnect`` request.
client_gone = threading.Event()
#: What the app's iterators saw: ``closed`` when the server closed them, and the time
#: (ns) the server had written the last chunk of ``GET /stream``.
seen: dict[str, Any] = {"closed": [], "last_chunk_ns": 0}


def stream(method: str) -> Iterator[bytes]:
    for _ in range(STREAM):
        yield CHUNK
    if method == "GET":  # a server may iterate a HEAD body too, and drop it
        seen["last_chunk_ns"] = time.time_ns()


def failing() -> Iterator[bytes]:
    yield CHUNK
    yield CHUNK
    raise RuntimeError("the body failed after 1000 bytes")


def until_disconnected() -> Iterator[bytes]:
    try:
        yield CHUNK
        client_gone.wait(10)
        for _ in range(BIG_CHUNKS):
            yield BIG
    finally:
        seen["closed"].append("disconnect")


def read_body(stream: Any, how: str) -> int:
    """Reads the request body the way ``how`` says; the number of bytes read."""
    if how == "readline":
        total = 0
        while line := stream.readline():
            total += len(line)
        return total
    if how == "readlines":
        return sum(map(len, stream.readlines()))
    if how == "iter":
        return sum(len(line) for line in stream)
    return len(stream.read())


# --- the apps -------------------------------------------------------------------------


def flask_app(provider: TracerProvider) -> Any:
    from flask import Flask, Response, request
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    app = Flask(__name__)

    @app.get("/stream")
    def get_stream() -> Response:
        return Response(stream(request.method))

    @app.get("/text")
    def get_text() -> Response:
        return Response(iter([TEXT, TEXT]))

    @app.get("/fail")
    def get_fail() -> Response:
        return Response(failing())

    @app.get("/disconnect")
    def get_disconnect() -> Response:
        return Response(until_disconnected())

    @app.post("/upload")
    def upload() -> str:
        return str(read_body(request.stream, request.args.get("how", "read")))

    FlaskInstrumentor().instrument_app(
        app, tracer_provider=provider, **instrumentor_kwargs("flask")
    )
    return app


def django_app(provider: TracerProvider, *, asgi: bool = False) -> Any:
    import django
    from django.conf import settings
    from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
    from django.urls import path
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    def get_stream(request: HttpRequest) -> HttpResponse:
        return StreamingHttpResponse(stream(request.method))

    def get_text(request: HttpRequest) -> HttpResponse:
        return StreamingHttpResponse(iter([TEXT, TEXT]))

    def get_fail(request: HttpRequest) -> HttpResponse:
        return StreamingHttpResponse(failing())

    def get_disconnect(request: HttpRequest) -> HttpResponse:
        return StreamingHttpResponse(until_disconnected())

    def upload(request: HttpRequest) -> HttpResponse:
        how = request.GET.get("how", "read")
        if how == "meta":  # the server's stream, which Django itself leaves unread
            return HttpResponse(str(read_body(request.META["wsgi.input"], "read")))
        return HttpResponse(str(read_body(request, how)))

    module = type(sys)("wsgi_bodies_urls")
    module.urlpatterns = [  # type: ignore[attr-defined]
        path("stream", get_stream),
        path("text", get_text),
        path("fail", get_fail),
        path("disconnect", get_disconnect),
        path("upload", upload),
    ]
    sys.modules[module.__name__] = module
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tests-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=module.__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={},
        LOGGING_CONFIG=None,
    )
    DjangoInstrumentor().instrument(tracer_provider=provider, **instrumentor_kwargs("django"))
    django.setup()
    if asgi:
        from django.core.asgi import get_asgi_application

        return get_asgi_application()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def raw_wsgi_app(provider: TracerProvider) -> Any:
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    bodies: dict[str, Callable[[str], Iterable[bytes]]] = {
        "/stream": stream,
        "/fail": lambda method: failing(),
        "/disconnect": lambda method: until_disconnected(),
    }

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if path == "/upload":
            how = environ.get("QUERY_STRING", "").partition("=")[2] or "read"
            body = str(read_body(environ["wsgi.input"], how)).encode()
            start_response("200 OK", [("Content-Length", str(len(body)))])
            return [body]
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return bodies[path](environ["REQUEST_METHOD"])

    return OpenTelemetryMiddleware(app, tracer_provider=provider, **instrumentor_kwargs("wsgi"))


APPS: dict[str, Callable[[TracerProvider], Any]] = {
    "flask": flask_app,
    "django": django_app,
    "raw_wsgi": raw_wsgi_app,
    "django_asgi": lambda provider: django_app(provider, asgi=True),
}


# --- the client -----------------------------------------------------------------------


def get(port: int, method: str, target: str) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request(method, target)
        response = conn.getresponse()
        try:
            body = response.read()
            return {"status": response.status, "received": len(body), "complete": True}
        except http.client.IncompleteRead as exc:
            return {"status": response.status, "received": len(exc.partial), "complete": False}
    finally:
        conn.close()


def upload(port: int, how: str) -> dict[str, Any]:
    """A chunked POST: no Content-Length."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.putrequest("POST", f"/upload?how={how}")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for start in range(0, len(UPLOAD), 1000):
            chunk = UPLOAD[start : start + 1000]
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
        response = conn.getresponse()
        return {"status": response.status, "app_read": int(response.read())}
    finally:
        conn.close()


def disconnect(port: int) -> dict[str, Any]:
    """Reads the headers and the first chunk, then hangs up."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    try:
        sock.sendall(b"GET /disconnect HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while CHUNK not in data:
            part = sock.recv(65536)
            if not part:
                break
            data += part
    finally:
        sock.close()
        client_gone.set()
    return {"received_first_chunk": CHUNK in data}


def serve_wsgi(app: Any) -> tuple[int, Callable[[], None]]:
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log(self, type: str, message: str, *args: Any) -> None:
            return None

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(10)

    return server.server_port, stop


def serve_asgi(app: Any) -> tuple[int, Callable[[], None]]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)
        sock.close()

    return sock.getsockname()[1], stop


def main() -> int:
    framework = sys.argv[1]
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    report: dict[str, Any] = {"client": {}}
    with capture_events(provider) as captured:
        app = APPS[framework](provider)
        port, stop = serve_asgi(app) if framework == "django_asgi" else serve_wsgi(app)
        client = report["client"]
        try:
            if framework == "django_asgi":
                for how in ("read", "readline", "readlines", "iter"):
                    client[f"upload-{how}"] = upload(port, how)
                deadline = time.monotonic() + 10
                while len(captured.events) < len(client) and time.monotonic() < deadline:
                    time.sleep(0.05)
                return finish(report, captured, memory)
            client["stream"] = get(port, "GET", "/stream")
            client["head"] = get(port, "HEAD", "/stream")
            if framework != "raw_wsgi":
                client["text"] = get(port, "GET", "/text")
            client["fail"] = get(port, "GET", "/fail")
            for how in ("read", "readline", "readlines", "iter"):
                client[f"upload-{how}"] = upload(port, how)
            if framework == "django":
                client["upload-meta"] = upload(port, "meta")
            client["disconnect"] = disconnect(port)
            # The server notices the hang-up on a later write, then closes the body.
            deadline = time.monotonic() + 20
            while not seen["closed"] and time.monotonic() < deadline:
                time.sleep(0.05)
            deadline = time.monotonic() + 10
            while len(captured.events) < len(client) and time.monotonic() < deadline:
                time.sleep(0.05)
            return finish(report, captured, memory)
        finally:
            stop()


def finish(report: dict[str, Any], captured: Any, memory: InMemorySpanExporter) -> int:
    report["events"] = list(captured.events)
    report["spans"] = [
        {
            "target": s.attributes.get("http.target") or s.attributes.get("url.path"),
            "method": s.attributes.get("http.method") or s.attributes.get("http.request.method"),
            "end_ns": s.end_time,
            "status": s.status.status_code.name,
        }
        for s in memory.get_finished_spans()
        if s.kind is SpanKind.SERVER
    ]
    report["seen"] = seen
    report["constants"] = {"chunk": len(CHUNK), "big": len(BIG), "big_chunks": BIG_CHUNKS}
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
