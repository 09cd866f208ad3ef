"""The two seams WSGI body counting relies on (``otel/_sdk.py``): holding a span's end
back, and the counting layer inside every OpenTelemetry WSGI middleware. Both can be
undone, and both fall back to the plain behaviour."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import INVALID_SPAN
from werkzeug.test import Client

from peekapi_otel.hooks import instrumentor_kwargs
from peekapi_otel.otel._sdk import hold_span_end, install_wsgi_counter, undo_patches
from peekapi_otel.otel._wsgi_body import CountingWSGI, install_wsgi_body_counting
from peekapi_otel.testing import capture_events


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def test_an_end_while_held_happens_at_release() -> None:
    provider, memory = _provider()
    span = provider.get_tracer("t").start_span("held")
    release = hold_span_end(span)
    assert release is not None
    span.end()
    assert memory.get_finished_spans() == ()
    assert span.is_recording()
    release()
    assert [s.name for s in memory.get_finished_spans()] == ["held"]
    release()  # once only
    assert len(memory.get_finished_spans()) == 1


def test_a_release_before_any_end_lets_the_next_end_through() -> None:
    provider, memory = _provider()
    span = provider.get_tracer("t").start_span("free")
    release = hold_span_end(span)
    assert release is not None
    release()
    assert memory.get_finished_spans() == ()
    span.end()
    assert [s.name for s in memory.get_finished_spans()] == ["free"]


def test_nothing_to_hold_on_a_span_that_is_not_recording() -> None:
    assert hold_span_end(INVALID_SPAN) is None
    provider, _ = _provider()
    span = provider.get_tracer("t").start_span("done")
    span.end()
    assert hold_span_end(span) is None


def _app(environ: dict[str, Any], start_response: Any) -> Any:
    if environ["PATH_INFO"] == "/list":
        start_response("200 OK", [("Content-Length", "5")])
        return [b"abc", b"de"]
    start_response("200 OK", [])

    def body() -> Iterator[bytes]:
        yield b"x" * 10

    return body()


def test_the_wsgi_counter_can_be_undone_and_installed_again() -> None:
    provider, _ = _provider()
    try:
        undo_patches()
        plain = OpenTelemetryMiddleware(_app, tracer_provider=provider)
        assert plain.wsgi is _app
        assert install_wsgi_body_counting()
        assert install_wsgi_counter(CountingWSGI)  # already there: not wrapped twice
        counted = OpenTelemetryMiddleware(_app, tracer_provider=provider)
        assert type(counted.wsgi) is CountingWSGI
        assert counted.wsgi.app is _app
    finally:
        install_wsgi_body_counting()


def test_a_middleware_without_the_counter_falls_back_to_content_length() -> None:
    provider, _ = _provider()
    with capture_events(provider) as captured:
        try:
            undo_patches()
            app = OpenTelemetryMiddleware(
                _app, tracer_provider=provider, **instrumentor_kwargs("wsgi")
            )
        finally:
            install_wsgi_body_counting()
        assert Client(app).get("/stream").get_data() == b"x" * 10
        (event,) = captured.events
    assert event["response_size"] == 0  # unknown: no Content-Length, nothing counted


def test_a_list_body_goes_to_the_server_as_it_is() -> None:
    """Not streamed: its Content-Length gives the size, and servers such as wsgiref
    derive one from a one-item list, so the counting layer hands it back as it is."""
    provider, _ = _provider()
    with capture_events(provider) as captured:
        app = OpenTelemetryMiddleware(_app, tracer_provider=provider, **instrumentor_kwargs("wsgi"))
        assert Client(app).get("/list").get_data() == b"abcde"
        (event,) = captured.events
    assert event["response_size"] == 5
    counting = app.wsgi
    assert type(counting) is CountingWSGI
    body = counting({"REQUEST_METHOD": "GET", "PATH_INFO": "/list"}, lambda *a: None)
    assert type(body) is list
