"""``PeekApiSpanProcessor``: one PeekAPI event per HTTP request span."""

from __future__ import annotations

from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.trace import SpanKind

from peekapi_otel.core._guard import guard, report
from peekapi_otel.core._options import Options
from peekapi_otel.otel import _credentials, _sdk
from peekapi_otel.otel._asgi import install_asgi_counter
from peekapi_otel.otel._exporter import PeekApiSpanExporter
from peekapi_otel.otel._instrumentors import chain_hooks_into_instrumentors
from peekapi_otel.otel._sdk import is_request_span, record_of
from peekapi_otel.otel._state import STATE
from peekapi_otel.otel._wsgi_body import install_wsgi_body_counting

_SERVER = SpanKind.SERVER
_CLIENT = SpanKind.CLIENT


class PeekApiSpanProcessor(_sdk.EndingHook):
    """Turns each local-root HTTP SERVER span into one PeekAPI event.

    Privacy: captured ``authorization``, ``x-api-key``, ``cookie``, ``set-cookie`` and
    ``proxy-authorization`` headers (and any ``consumer_headers``) on SERVER and CLIENT
    spans are hashed or replaced by ``[REDACTED]`` before any processor's ``on_end``, so
    no exporter of the provider ever sees a raw credential.

    ``on_start``/``on_end`` are O(1), do no I/O and never raise. Every request is counted
    even when the trace sampler drops it, provided the sampler records it (``configure()``
    and the distro wrap the sampler so that it does).

    Building one also makes the OpenTelemetry ASGI middleware and the Flask and Django
    instrumentors created from then on carry the PeekAPI hooks (see the README's
    "What peekapi-otel patches").

    Args:
        exporter: where events go; by default a :class:`PeekApiSpanExporter` built from
            ``kwargs`` and the ``PEEKAPI_*`` environment.
        kwargs: any :class:`Options` field, e.g. ``api_key=``, ``identify_consumer=``.

    Raises:
        ValueError: an explicit argument is invalid, or another live processor in this
            process uses different ``consumer_headers`` or ``identify_consumer``.
    """

    def __init__(self, exporter: PeekApiSpanExporter | None = None, **kwargs: Any) -> None:
        if exporter is not None and kwargs:
            raise ValueError("pass options either to the exporter or to the processor")
        options = exporter.options if exporter is not None else Options.from_env(**kwargs)
        # Refused before anything is built for it.
        STATE.adopt_rule(self, options.consumer_headers, options.identify_consumer)
        try:
            if exporter is None:
                exporter = PeekApiSpanExporter(options=options)
        except BaseException:
            STATE.release_rule(self)
            raise
        self.options: Options = options
        self.exporter = exporter
        self._submit = exporter.feed_from_processor()
        install_asgi_counter()
        chain_hooks_into_instrumentors()
        install_wsgi_body_counting()
        with STATE.lock:
            STATE.processors += 1
        self._registered = True

    ending_kinds = (_SERVER, _CLIENT)

    # The per-span callbacks run for every span of the app (an ASGI request makes
    # four): they test the kind first and use ``try`` rather than ``with guard:``.

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if _sdk.ENDING_HOOK:
            return  # cleaned as the span ends instead (on_ending)
        try:
            kind = _sdk.span_kind(span)
            if kind is _SERVER or kind is _CLIENT:
                _credentials.protect(span)
        except Exception as exc:  # noqa: BLE001 - never into the app; counted
            report(exc)

    def on_ending(self, span: ReadableSpan) -> None:
        try:
            kind = _sdk.span_kind(span)
            if kind is _SERVER or kind is _CLIENT:
                _credentials.scrub(span)
        except Exception as exc:  # noqa: BLE001 - never into the app; counted
            report(exc)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            if _sdk.span_kind(span) is _SERVER and self._registered and is_request_span(span):
                self._submit(record_of(span))
        except Exception as exc:  # noqa: BLE001 - never into the app; counted
            report(exc)

    def shutdown(self) -> None:
        with guard:
            if self._registered:
                self._registered = False
                STATE.release_rule(self)
                with STATE.lock:
                    STATE.processors = max(STATE.processors - 1, 0)
                    last = STATE.processors == 0
                if last:
                    # Nothing to count for any more: the instrumentation classes get
                    # their own methods back (objects built meanwhile keep our layer).
                    _sdk.undo_patches()
            self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        with guard:
            return self.exporter.force_flush(timeout_millis)
        return True
