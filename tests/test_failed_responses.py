"""Responses that fail after their status line: a real FastAPI app through the
OpenTelemetry middleware, events from ``capture_events``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider

from peekapi_otel import hooks
from peekapi_otel.testing import capture_events

CHUNK = b"x" * 100


class StreamBroke(RuntimeError):
    pass


def _app(provider: TracerProvider) -> FastAPI:
    app = FastAPI()

    @app.get("/stream/{mode}")
    def stream(mode: str) -> StreamingResponse:
        def body() -> Iterator[bytes]:
            for _ in range(7):
                yield CHUNK
            if mode == "broken":
                raise StreamBroke("the generator failed after 700 bytes")

        return StreamingResponse(body(), media_type="application/octet-stream")

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, **hooks.instrumentor_kwargs("fastapi")
    )
    return app


@pytest.mark.parametrize(("mode", "status"), [("broken", 500), ("whole", 200)])
def test_a_stream_that_dies_midway_is_a_server_error(mode: str, status: int) -> None:
    provider = TracerProvider()
    with capture_events(provider) as captured:
        client = TestClient(_app(provider), raise_server_exceptions=False)
        response = client.get(f"/stream/{mode}", headers={"x-api-key": "k1"})
        # The status line went out before the generator failed. Starlette 0.27's TestClient
        # drops the body it received when the app raises before the last chunk.
        assert response.status_code == 200
        assert response.content in (CHUNK * 7, b"" if mode == "broken" else CHUNK * 7)
        (event,) = captured.events
    assert (event["path"], event["status_code"], event["response_size"]) == (
        "/stream/{mode}",
        status,
        700,
    )
    assert event["consumer_id"].startswith("hash_")


_DJANGO_APP = """
import json
import django
from django.conf import settings

settings.configure(
    DEBUG=False, SECRET_KEY="tests-only", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
    MIDDLEWARE=[], INSTALLED_APPS=[], DATABASES={}, LOGGING_CONFIG=None,
)
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.test import Client
from django.urls import path
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.sdk.trace import TracerProvider

from peekapi_otel import hooks
from peekapi_otel.testing import capture_events


def missing(request):
    raise Http404("no such item")


def forbidden(request):
    raise PermissionDenied()


urlpatterns = [path("missing", missing), path("forbidden", forbidden)]
provider = TracerProvider()
with capture_events(provider) as captured:
    DjangoInstrumentor().instrument(tracer_provider=provider, **hooks.instrumentor_kwargs("django"))
    django.setup()
    client = Client(raise_request_exception=False)
    statuses = [client.get(p).status_code for p in ("/missing", "/forbidden")]
    events = captured.events
print(json.dumps({"statuses": statuses, "events": events}))
"""


def test_django_errors_raised_as_4xx_keep_their_status(tmp_path: Path) -> None:
    """Django ends the span of a view that raised ``Http404`` or ``PermissionDenied`` in
    error; the event keeps the 404/403 the client got, not the 500 of a response that
    failed midway. (A subprocess: Django's settings are process-wide.)"""
    script = tmp_path / "django_errors.py"
    script.write_text(_DJANGO_APP)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["statuses"] == [404, 403]
    assert sorted((e["path"], e["status_code"]) for e in result["events"]) == [
        ("/forbidden", 403),
        ("/missing", 404),
    ]
