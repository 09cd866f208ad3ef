"""What every framework glue module puts on a server span: the consumer, the method
when it is not a standard one, both body sizes, the route template, and the query
where the instrumentation left it out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from opentelemetry.trace import Span
from opentelemetry.util.http import redact_query_parameters

from peekapi_otel._schema import (
    ATTR_CONSUMER,
    ATTR_METHOD,
    ATTR_QUERY,
    ATTR_REQUEST_SIZE,
    ATTR_RESPONSE_SIZE,
    TARGET,
    URL_QUERY,
)
from peekapi_otel.core._hashing import hash_consumer
from peekapi_otel.otel._request_attrs import _STANDARD_METHODS, _identify
from peekapi_otel.otel._sdk import attributes_of, put_attributes
from peekapi_otel.otel._state import STATE

HTTP_ROUTE: Final = "http.route"


def put_request(
    span: Span,
    header: Callable[[str], str | None],
    headers: Callable[[], dict[str, str]],
    request_size: int,
    method: str,
) -> None:
    """The consumer (hashed, or from ``identify_consumer``), the request size and a 0
    response size until the response is known.

    Args:
        header: one request header by lower-case name (``None`` when absent).
        headers: all request headers, lower-case names (only for ``identify_consumer``).
    """
    attrs: dict[str, Any] = {ATTR_REQUEST_SIZE: max(request_size, 0), ATTR_RESPONSE_SIZE: 0}
    if STATE.rule.identify_consumer is None:
        for name in STATE.rule.consumer_headers:  # the first configured header present wins
            raw = header(name)
            if raw:
                attrs[ATTR_CONSUMER] = hash_consumer(raw)
                break
    else:
        consumer = _identify(headers)
        if consumer:
            attrs[ATTR_CONSUMER] = consumer
    if method not in _STANDARD_METHODS:
        upper = method.upper()
        if upper not in _STANDARD_METHODS:
            attrs[ATTR_METHOD] = upper
    put_attributes(span, attrs)


def put_response_size(span: Span, size: int) -> None:
    put_attributes(span, {ATTR_RESPONSE_SIZE: max(size, 0)})


def put_route(span: Span, method: str, route: str) -> None:
    """The route template as ``http.route`` and in the span name, as the instrumentations
    that know their router do (``GET /items/{id}``)."""
    if route:
        span.set_attribute(HTTP_ROUTE, route)
        span.update_name(f"{method} {route}" if method else route)


def put_route_if_other(span: Span, route: str) -> None:
    """``route`` as ``http.route`` unless the span says so already (``""`` where the
    framework matched no route, as the instrumentations that know their router put it).
    The span name stays the instrumentation's."""
    if attributes_of(span).get(HTTP_ROUTE) != route:
        span.set_attribute(HTTP_ROUTE, route)


def put_query_if_missing(span: Span, target: str) -> None:
    """The query of ``target`` (the request's path and query, as received) as
    ``peekapi.query`` when the instrumentation kept it out of both ``url.query`` and
    ``http.target`` (the aiohttp-server and Tornado instrumentations before their
    semantic-convention opt-in put only the path there). It is redacted as those
    instrumentations redact theirs once they report it, so the event is the same on
    every version."""
    if "?" not in target:
        return
    attributes = attributes_of(span)
    if URL_QUERY in attributes or "?" in str(attributes.get(TARGET, "")):
        return
    query = redact_query_parameters(target).partition("?")[2]
    if query:
        put_attributes(span, {ATTR_QUERY: query})


def content_length(value: Any) -> int | None:
    try:
        size = int(value)
    except (TypeError, ValueError):
        return None
    return size if size >= 0 else None
