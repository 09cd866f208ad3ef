"""An internal error in our processor or hooks never breaks the request.

The SDK does not guard span processors: an exception in ``on_start``/``on_end`` would
reach the app (OTEL-FACTS Q3). These tests force errors at each of our entry points,
with real requests through a real instrumentation, and check that the request still
succeeds, the error is counted, and later requests are still delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

import peekapi_otel.otel._processor as processor_module
from conftest import InternalErrors
from ingest import Ingest
from peekapi_otel import PeekApiSpanProcessor, hooks, stats
from peekapi_otel.core._guard import _Guard, _log
from peekapi_otel.otel import _sdk

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class Boom(Exception):
    pass


class BrokenSpan:
    """Anything our code reads from it raises."""

    def __getattr__(self, name: str) -> Any:
        raise Boom(f"no {name}")


class UnconvertibleSpan(ReadableSpan):
    """Passes ``is_request_span`` but cannot be turned into an event."""

    @property
    def start_time(self) -> int | None:
        raise Boom("no start time")


def dropped(reason: str) -> int:
    counts = stats()["dropped"]
    assert isinstance(counts, dict)
    return int(counts[reason])


@pytest.fixture
def app(ingest: Ingest, tmp_path: Path) -> Iterator[tuple[Any, PeekApiSpanProcessor]]:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    provider = TracerProvider()
    processor = PeekApiSpanProcessor(
        api_key="k", endpoint=ingest.url, flush_interval=0.2, storage_path=str(tmp_path)
    )
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    fastapi_app = FastAPI()

    @fastapi_app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    FastAPIInstrumentor.instrument_app(
        fastapi_app, tracer_provider=provider, **hooks.instrumentor_kwargs("fastapi")
    )
    yield TestClient(fastapi_app), processor
    provider.shutdown()


def test_on_end_error_does_not_break_the_request(
    app: tuple[Any, PeekApiSpanProcessor],
    ingest: Ingest,
    internal_errors: InternalErrors,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    internal_errors.expected = True
    client, processor = app

    def broken(span: ReadableSpan) -> bool:
        raise Boom("is_request_span failed")

    monkeypatch.setattr(processor_module, "is_request_span", broken)
    response = client.get("/items/1", headers={"x-api-key": "secret"})
    assert response.status_code == 200
    assert response.json() == {"item_id": 1}
    # The server span and the ASGI receive/send spans each hit the error.
    assert internal_errors
    assert all(isinstance(e, Boom) for e in internal_errors)

    monkeypatch.undo()  # the next request is delivered as usual
    assert client.get("/items/2").status_code == 200
    assert processor.force_flush(10_000)
    (event,) = ingest.wait_for(1, timeout=10)
    assert (event["path"], event["status_code"]) == ("/items/{item_id}", 200)


def test_on_start_and_on_end_swallow_broken_span_objects(
    internal_errors: InternalErrors, tmp_path: Path
) -> None:
    internal_errors.expected = True
    processor = PeekApiSpanProcessor(api_key="k", storage_path=str(tmp_path))
    try:
        processor.on_start(BrokenSpan())  # type: ignore[arg-type]
        processor.on_ending(BrokenSpan())  # type: ignore[arg-type]
        processor.on_end(BrokenSpan())  # type: ignore[arg-type]
        processor.on_end(None)  # type: ignore[arg-type]
    finally:
        processor.shutdown()
    # on_start reads the span only where the SDK has no ending hook.
    assert len(internal_errors) == (3 if _sdk.ENDING_HOOK else 4)
    assert processor.force_flush(100) is True


def test_hook_error_does_not_break_the_request_and_the_event_is_sent(
    app: tuple[Any, PeekApiSpanProcessor],
    ingest: Ingest,
    internal_errors: InternalErrors,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    internal_errors.expected = True
    client, processor = app

    def broken(*args: Any) -> str:
        raise Boom("hook failed")

    monkeypatch.setattr("peekapi_otel.otel._asgi.hash_consumer", broken)
    response = client.get("/items/3", headers={"x-api-key": "secret"})
    assert response.status_code == 200
    assert internal_errors
    assert all(isinstance(e, Boom) for e in internal_errors)
    assert processor.force_flush(10_000)
    (event,) = ingest.wait_for(1, timeout=10)
    # The span still makes its event; what the failed hook would have added is missing.
    assert (event["path"], event["status_code"], event["method"]) == (
        "/items/{item_id}",
        200,
        "GET",
    )
    assert event["consumer_id"] is None


def test_a_span_that_cannot_be_converted_is_counted_and_the_rest_delivered(
    app: tuple[Any, PeekApiSpanProcessor], ingest: Ingest, internal_errors: InternalErrors
) -> None:
    internal_errors.expected = True
    client, processor = app
    assert client.get("/items/4").status_code == 200
    context = SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(1))
    bad = UnconvertibleSpan(
        name="GET", context=context, kind=SpanKind.SERVER, attributes={"http.method": "GET"}
    )
    processor.on_end(bad)
    assert client.get("/items/5").status_code == 200
    assert processor.force_flush(10_000)
    events = ingest.wait_for(2, timeout=10)
    assert sorted(e["status_code"] for e in events) == [200, 200]
    assert len(events) == 2
    # Reading the span fails in on_end, which reports it to the guard (counted as
    # internal_error outside the tests).
    assert [type(e) for e in internal_errors] == [Boom]


def test_the_real_guard_logs_once_and_counts(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    caplog.set_level(logging.ERROR, logger="peekapi_otel")
    monkeypatch.setattr(_Guard, "handler", staticmethod(_log))
    processor = PeekApiSpanProcessor(api_key="k", storage_path=str(tmp_path))
    try:
        for _ in range(3):
            processor.on_end(BrokenSpan())  # type: ignore[arg-type]
    finally:
        processor.shutdown()
    assert dropped("internal_error") == 3
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "the request was not affected" in errors[0].getMessage()
    assert errors[0].exc_info is not None
