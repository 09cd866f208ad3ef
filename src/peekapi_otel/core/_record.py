"""What a request span's event is made of, read through the public OpenTelemetry API.

A :class:`Record` holds only what the mapping reads, so the delivery pipeline can queue
records and let the spans go at once (holding spans makes the garbage collector run).
The faster reads of the SDK's own span live in ``peekapi_otel.otel._sdk``, which falls
back to these functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from peekapi_otel._schema import FULL_URL, METHOD, OWN_PATH, TARGET, URL_PATH

#: Attributes any one of which gives the raw path (the mapping tries them in this order).
PATH_ATTRIBUTES: Final = (URL_PATH, TARGET, OWN_PATH, *FULL_URL)


class Record(NamedTuple):
    """One request span, as the mapping needs it."""

    attributes: Mapping[str, Any]
    trace_id: int
    span_id: int
    start_ns: int
    end_ns: int
    status_code: StatusCode


def is_request_span(span: ReadableSpan) -> bool:
    """One event per request: a local-root SERVER span that carries an HTTP method."""
    if span.kind is not SpanKind.SERVER:
        return False
    parent = span.parent
    if parent is not None and not parent.is_remote:
        return False
    attributes = span.attributes or {}
    return any(key in attributes for key in METHOD)


def record_of_span(span: ReadableSpan) -> Record:
    """The span's :class:`Record` (a span without a context gets ids 0)."""
    attributes: Mapping[str, Any] = span.attributes or {}
    if not any(key in attributes for key in PATH_ATTRIBUTES):
        attributes = with_path_from_name(attributes, span.name)
    context = span.context
    start = span.start_time or 0
    return Record(
        attributes,
        context.trace_id if context is not None else 0,
        context.span_id if context is not None else 0,
        start,
        span.end_time or start,
        span.status.status_code,
    )


def with_path_from_name(attributes: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """``attributes`` plus the path of a ``"GET /items/{id}"`` style span name: the last
    resort of a span without any path attribute."""
    _, _, rest = name.partition(" ")
    return {**attributes, OWN_PATH: rest if rest.startswith("/") else "/"}
