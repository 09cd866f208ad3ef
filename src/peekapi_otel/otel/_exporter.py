"""``PeekApiSpanExporter``: the OpenTelemetry exporter face of the delivery pipeline."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from peekapi_otel.core._guard import guard
from peekapi_otel.core._options import Options
from peekapi_otel.core._record import Record
from peekapi_otel.core._stats import STATS
from peekapi_otel.delivery._pipeline import Pipeline
from peekapi_otel.delivery._transport import Transport
from peekapi_otel.otel._sdk import is_request_span, record_of
from peekapi_otel.otel._state import STATE

_logger = logging.getLogger(__name__)


def _pipeline_for(options: Options, transport: Transport | None) -> Pipeline:
    """One pipeline per (endpoint, API key) and process: an exporter behind a
    ``BatchSpanProcessor`` and a PeekAPI processor configured alike share it."""
    if transport is not None:
        return Pipeline(options, transport=transport)
    key = str(options.spool_dir())
    with STATE.lock:
        pipeline = STATE.pipelines.get(key)
        if pipeline is None or pipeline.closed or pipeline.options != options:
            pipeline = STATE.pipelines[key] = Pipeline(options)
        return pipeline


class PeekApiSpanExporter(SpanExporter):
    """Batches request spans as PeekAPI events to the ingest, with retry and a disk spool.

    With no arguments it reads ``PEEKAPI_*`` from the environment, so
    ``OTEL_TRACES_EXPORTER=peekapi`` works. Behind a ``BatchSpanProcessor`` it only sees
    *sampled* spans; :class:`PeekApiSpanProcessor` counts every request.

    Args:
        options: resolved options; otherwise built from ``kwargs`` and the environment.
        kwargs: any :class:`Options` field (``api_key=``, ``endpoint=``...).

    Raises:
        ValueError: an explicit argument is invalid.
    """

    def __init__(
        self,
        *,
        options: Options | None = None,
        _transport: Transport | None = None,
        **kwargs: Any,
    ) -> None:
        self.options = options if options is not None else Options.from_env(**kwargs)
        self._pipeline: Pipeline | None = None
        self._via_processor = False
        problem = self.options.problem
        if problem is not None:
            STATS.once("disabled:" + problem, logging.ERROR, "peekapi-otel: %s", problem)
            return
        self._pipeline = _pipeline_for(self.options, _transport)

    @property
    def enabled(self) -> bool:
        return self._pipeline is not None

    def feed_from_processor(self) -> Callable[[Record], None]:
        """Hand this exporter to a :class:`PeekApiSpanProcessor`: from now on the
        processor submits every request span itself and :meth:`export` ignores what a
        ``BatchSpanProcessor`` passes, so no request is counted twice. Returns the
        O(1) function the processor calls for each request span."""
        self._via_processor = True
        pipeline = self._pipeline
        return self.submit if pipeline is None else pipeline.submit

    def submit(self, record: Record) -> None:
        """Queue one request's record (O(1), no I/O)."""
        pipeline = self._pipeline
        if pipeline is None:
            # Counted, not logged again: the reason was logged once at construction.
            STATS.drop_quietly("disabled")
            return
        pipeline.submit(record)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with guard:
            if self._via_processor:
                return SpanExportResult.SUCCESS
            if STATE.processors:
                return SpanExportResult.SUCCESS
            for span in spans:
                if is_request_span(span):
                    self.submit(record_of(span))
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        with guard:
            if self._pipeline is not None:
                return self._pipeline.force_flush(timeout_millis / 1000)
        return True

    def shutdown(self) -> None:
        with guard:
            if self._pipeline is not None:
                self._pipeline.shutdown()

    def spool_info(self) -> Any:
        """What waits on disk for this exporter's endpoint and key."""
        return None if self._pipeline is None else self._pipeline.spool.info()
