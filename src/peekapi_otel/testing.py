"""Helpers for your own tests: see the PeekAPI events your app would send.

::

    from peekapi_otel.testing import capture_events

    def test_items_are_counted(client):
        with capture_events() as captured:
            client.get("/items/1", headers={"x-api-key": "k"})
        (event,) = captured.events
        assert event["path"] == "/items/{item_id}"
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from peekapi_otel.core._options import Options
from peekapi_otel.delivery._transport import SendResult
from peekapi_otel.otel._exporter import PeekApiSpanExporter
from peekapi_otel.otel._processor import PeekApiSpanProcessor
from peekapi_otel.otel._sampling import wrap
from peekapi_otel.otel._state import STATE, RequestRule
from peekapi_otel.otel._state import reset as reset_process_state

__all__ = ["CapturedEvents", "InMemoryTransport", "capture_events", "reset_process_state"]


class InMemoryTransport:
    """A transport that keeps every body it is given and answers 200."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bodies: list[bytes] = []

    def send(self, body: bytes, timeout: float) -> SendResult:
        with self._lock:
            self.bodies.append(body)
        return SendResult(status=200)

    def close(self) -> None:
        return None

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            bodies = list(self.bodies)
        return [event for body in bodies for event in json.loads(body)]


class CapturedEvents:
    """The events captured so far; reading :attr:`events` flushes first."""

    def __init__(self, processor: PeekApiSpanProcessor, transport: InMemoryTransport) -> None:
        self.processor = processor
        self.transport = transport

    @property
    def events(self) -> list[dict[str, Any]]:
        self.processor.force_flush(10_000)
        return self.transport.events


@contextlib.contextmanager
def capture_events(
    provider: TracerProvider | None = None, **options: Any
) -> Iterator[CapturedEvents]:
    """Attach a PeekAPI processor that records events in memory instead of sending them.

    Args:
        provider: the SDK provider your app's instrumentation uses; by default the global
            one (a new one is created and registered when none is set).
        options: :class:`~peekapi_otel.Options` fields, e.g. ``identify_consumer=``.
    """
    if provider is None:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            provider = current
        else:
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
    spool = tempfile.mkdtemp(prefix="peekapi-capture-")
    settings = {
        "api_key": "capture",
        "endpoint": "http://127.0.0.1/v1/events",
        "storage_path": spool,
        "flush_interval": 0.2,
        **options,
    }
    transport = InMemoryTransport()
    resolved = Options.from_env({}, **settings)
    exporter = PeekApiSpanExporter(options=resolved, _transport=transport)
    # The hooks and the credential guard follow one consumer rule per process: while
    # capturing, the capture's rule is in force (for the app's own processor too), and
    # the app's rule comes back afterwards.
    saved = STATE.swap_rule(
        RequestRule.build(resolved.consumer_headers, resolved.identify_consumer)
    )
    try:
        processor = PeekApiSpanProcessor(exporter)
    except BaseException:
        STATE.restore_rule(saved)
        raise
    provider.add_span_processor(processor)
    if processor.options.record_all:
        provider.sampler = wrap(provider.sampler)
    try:
        yield CapturedEvents(processor, transport)
    finally:
        processor.shutdown()
        shutil.rmtree(spool, ignore_errors=True)
        STATE.restore_rule(saved)
