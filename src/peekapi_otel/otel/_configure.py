"""``configure()``: attach PeekAPI to the SDK TracerProvider in one call, idempotently."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from peekapi_otel.delivery._shutdown import install_sigterm_handler
from peekapi_otel.otel._processor import PeekApiSpanProcessor
from peekapi_otel.otel._sampling import wrap
from peekapi_otel.otel._sdk import span_processors

_logger = logging.getLogger(__name__)
_lock = threading.Lock()

SANITIZE: Final = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
# Cookies never identify a consumer: redact them at capture time too, before any of our
# code runs (consumer headers are hashed by the processor instead).
SANITIZED: Final = ("cookie", "set-cookie", "proxy-authorization")


def merge_env_list(name: str, items: tuple[str, ...] | list[str]) -> None:
    """Add ``items`` to the comma list in ``os.environ[name]``, keeping the user's."""
    current = [i.strip() for i in os.environ.get(name, "").split(",") if i.strip()]
    lower = {i.lower() for i in current}
    merged = current + [i for i in items if i.lower() not in lower]
    if merged != current:
        os.environ[name] = ",".join(merged)


def set_capture_defaults() -> None:
    """Redact cookies in whatever header capture the user switches on.

    No capture is switched on here: the ASGI layer and the WSGI/Flask/Django hooks read
    both sizes and the consumer from the raw request, and capturing ``content-length``
    as well would cost every request (about 17 us on ASGI, parsed per request on WSGI)
    for values already on the span.
    """
    merge_env_list(SANITIZE, list(SANITIZED))


def find_processor(provider: TracerProvider) -> PeekApiSpanProcessor | None:
    for processor in span_processors(provider):
        if isinstance(processor, PeekApiSpanProcessor):
            return processor
    return None


def attach(provider: TracerProvider, **kwargs: Any) -> PeekApiSpanProcessor:
    """Add a PeekAPI processor to ``provider`` unless one is there; wrap its sampler."""
    with _lock:
        existing = find_processor(provider)
        if existing is not None:
            return existing
        processor = PeekApiSpanProcessor(**kwargs)
        provider.add_span_processor(processor)
        if processor.options.record_all:
            provider.sampler = wrap(provider.sampler)
        return processor


def configure(**kwargs: Any) -> PeekApiSpanProcessor:
    """Send PeekAPI analytics from this process's OpenTelemetry HTTP server spans.

    Adds a :class:`PeekApiSpanProcessor` to the global SDK ``TracerProvider``, creating
    and registering one when none is set. Calling it again returns the same processor.
    Call it before instrumenting your app: tracers created earlier keep their sampler.

    Args:
        kwargs: any :class:`Options` field (``api_key=``, ``endpoint=``,
            ``identify_consumer=``...); the rest comes from ``PEEKAPI_*`` variables.

    Raises:
        ValueError: an explicit argument is invalid.
    """
    set_capture_defaults()
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        processor = attach(current, **kwargs)
    else:
        provider = TracerProvider()
        processor = attach(provider, **kwargs)
        trace.set_tracer_provider(provider)
        if trace.get_tracer_provider() is not provider:
            _logger.warning(
                "peekapi-otel: a non-SDK TracerProvider is already set; PeekAPI sees no spans"
            )
    install_sigterm_handler()
    return processor
