"""``configure()`` switches on no header capture: the ASGI layer and the WSGI hooks
already read both sizes and the consumer from the raw request, and capture would cost
every request for values the span already has. Each app runs in its own process (the
global TracerProvider is set once per process) through the README's programmatic
wiring, against a loopback ingest; a second, in-memory exporter shows what the spans
carry."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ingest import Ingest

CONSUMER = "consumer-key-123456"
REQUEST_BODY = b'{"name": "hammer"}'

_SCRIPT = textwrap.dedent(
    """
    import asyncio, io, json, os, sys

    import peekapi_otel
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    framework, endpoint, storage = sys.argv[1:4]
    body = os.environ["BODY"].encode()
    consumer = os.environ["CONSUMER"]
    processor = peekapi_otel.configure(api_key="k", endpoint=endpoint, storage_path=storage)
    spans = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(spans))

    if framework == "raw_asgi":
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        async def app(scope, receive, send):
            message = await receive()
            reply = b"read " + str(len(message.get("body", b""))).encode()
            headers = [(b"content-length", str(len(reply)).encode())]
            await send({"type": "http.response.start", "status": 201, "headers": headers})
            await send({"type": "http.response.body", "body": reply})

        wrapped = OpenTelemetryMiddleware(app)
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/items", "raw_path": b"/items",
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
            "headers": [
                (b"host", b"testserver"), (b"x-api-key", consumer.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
        messages = [{"type": "http.request", "body": body}]

        async def receive():
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message):
            return None

        asyncio.run(wrapped(scope, receive, send))
    else:
        from flask import Flask, request
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
        from peekapi_otel.hooks import instrumentor_kwargs

        app = Flask("t")

        @app.post("/items")
        def create():
            return "read " + str(len(request.get_data())), 201

        FlaskInstrumentor().instrument_app(app, **instrumentor_kwargs("flask"))
        client = app.test_client()
        client.post("/items", data=body, headers={"x-api-key": consumer})

    processor.force_flush(10_000)
    (span,) = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    captured = os.environ.get("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST")
    print("@@" + json.dumps({"attributes": sorted(span.attributes), "capture": captured}))
    """
)


@pytest.mark.parametrize("framework", ["raw_asgi", "flask"])
def test_configure_captures_no_headers_and_sizes_stay_exact(
    ingest: Ingest, tmp_path: Path, framework: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PEEKAPI_"))}
    env.update(BODY=REQUEST_BODY.decode(), CONSUMER=CONSUMER)
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, framework, ingest.url, str(tmp_path / "spool")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("@@"))
    report: dict[str, Any] = json.loads(line[2:])
    assert report["capture"] is None
    assert not [a for a in report["attributes"] if ".header." in a], report["attributes"]
    (event,) = ingest.wait_for(1, timeout=10)
    reply = f"read {len(REQUEST_BODY)}".encode()
    assert (event["request_size"], event["response_size"]) == (len(REQUEST_BODY), len(reply))
    digest = hashlib.sha256(CONSUMER.encode()).hexdigest()[:12]
    assert event["consumer_id"] == "hash_" + digest
    assert event["status_code"] == 201
