"""``PeekApiSpanProcessor``: one PeekAPI event per HTTP request span."""

from __future__ import annotations

from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind

from peekapi_otel.core._events import is_request_span
from peekapi_otel.core._guard import guard, report
from peekapi_otel.core._options import Options
from peekapi_otel.otel import _credentials
from peekapi_otel.otel._asgi import install_asgi_counter
from peekapi_otel.otel._exporter import PeekApiSpanExporter, _Registry
from peekapi_otel.otel._request_attrs import configure_hooks
from peekapi_otel.otel._wsgi_body import install_wsgi_body_counting

_GUARDED_KINDS = (SpanKind.SERVER, SpanKind.CLIENT)
_SERVER = SpanKind.SERVER
_CLIENT = SpanKind.CLIENT


class PeekApiSpanProcessor(SpanProcessor):
    """Turns each local-root HTTP SERVER span into one PeekAPI event.

    Privacy: captured ``authorization``, ``x-api-key``, ``cookie``, ``set-cookie`` and
    ``proxy-authorization`` headers (and any ``consumer_headers``) on SERVER and CLIENT
    spans are hashed or replaced by ``[REDACTED]`` as the span ends, before any
    processor's ``on_end``, so no exporter of the provider ever sees a raw credential.

    ``on_start``/``on_end`` are O(1), do no I/O and never raise. Every request is counted
    even when the trace sampler drops it, provided the sampler records it (``configure()``
    and the distro wrap the sampler so that it does).

    Args:
        exporter: where events go; by default a :class:`PeekApiSpanExporter` built from
            ``kwargs`` and the ``PEEKAPI_*`` environment.
        kwargs: any :class:`Options` field, e.g. ``api_key=``, ``identify_consumer=``.

    Raises:
        ValueError: an explicit argument is invalid.
    """

    def __init__(self, exporter: PeekApiSpanExporter | None = None, **kwargs: Any) -> None:
        if exporter is None:
            exporter = PeekApiSpanExporter(**kwargs)
        elif kwargs:
            raise ValueError("pass options either to the exporter or to the processor")
        self.exporter = exporter
        self.options: Options = exporter.options
        # Straight to the pipeline: ``on_end`` runs for every span of the app.
        pipeline = exporter._pipeline
        self._submit = exporter.submit if pipeline is None else pipeline.submit
        exporter._via_processor = True
        _credentials.set_consumer_headers(self.options.consumer_headers)
        configure_hooks(self.options.consumer_headers, self.options.identify_consumer)
        install_asgi_counter()
        install_wsgi_body_counting()
        with _Registry.lock:
            _Registry.processors += 1
        self._registered = True

    if _credentials.SCRUB_AT_END:
        # Credentials are cleaned as the span ends (``_on_ending``); the SDK still calls
        # this for every span, so it does nothing at all.
        def on_start(self, span: Span, parent_context: Context | None = None) -> None:
            pass

    else:  # pragma: no cover - an SDK without ``_on_ending``

        def on_start(self, span: Span, parent_context: Context | None = None) -> None:
            with guard:
                if span.kind in _GUARDED_KINDS:
                    _credentials.protect(span)

    # The two per-span callbacks run for every span of the app (an ASGI request makes
    # four): they read the SDK's ``_kind`` field (the property is a Python call), test
    # the kind first, and use ``try`` rather than ``with guard:``.

    def _on_ending(self, span: Span) -> None:
        try:
            try:
                kind = span._kind
            except AttributeError:
                kind = span.kind
            if kind is _SERVER or kind is _CLIENT:
                _credentials.scrub(span)
        except Exception as exc:  # noqa: BLE001 - never into the app; counted
            report(exc)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            try:
                kind = span._kind
            except AttributeError:
                kind = span.kind
            if kind is _SERVER and self._registered and is_request_span(span):
                self._submit(span)
        except Exception as exc:  # noqa: BLE001 - never into the app; counted
            report(exc)

    def shutdown(self) -> None:
        with guard:
            if self._registered:
                self._registered = False
                with _Registry.lock:
                    _Registry.processors -= 1
            self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        with guard:
            return self.exporter.force_flush(timeout_millis)
        return True
