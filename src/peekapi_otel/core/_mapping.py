"""A request's :class:`~peekapi_otel.core._record.Record` to the PeekAPI event's values.

Every field is read through the attribute keys of :mod:`peekapi_otel._schema`, in the
order given there. Pure functions, no I/O.

Status rule: the recorded HTTP status, except that a span that ended in error reports
500 when it has no status at all (Starlette and raw ASGI produce that 500 outside the
OpenTelemetry middleware) or when its status says success (below 400): the response
failed after its status line was sent, e.g. a streamed body whose generator raised. A
4xx stays as it is even on an error span (Django ends a view's ``Http404`` that way).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from opentelemetry.trace import StatusCode

from peekapi_otel._schema import (
    ATTR_CONSUMER,
    ATTR_REQUEST_SIZE,
    FULL_URL,
    MAX_CONSUMER,
    MAX_METHOD,
    MAX_PATH,
    METHOD,
    METHOD_ORIGINAL,
    OWN_PATH,
    OWN_QUERY,
    REQUEST_HEADER,
    REQUEST_SIZE,
    RESPONSE_SIZE,
    ROUTE,
    STATUS,
    TARGET,
    UNKNOWN_METHOD,
    URL_PATH,
    URL_QUERY,
)
from peekapi_otel.core._hashing import hash_consumer
from peekapi_otel.core._record import Record
from peekapi_otel.core._stats import STATS
from peekapi_otel.core._timetext import millis, timestamp

Event = dict[str, Any]
IdentifyConsumer = Callable[[Mapping[str, str]], "str | None"]

#: The status below which an error span's response counts as failed midway.
_FIRST_CLIENT_ERROR: Final = 400


@dataclass(frozen=True)
class MappingRules:
    """The user's choices that shape an event (see :class:`~peekapi_otel.Options`)."""

    route_first: bool = True
    collect_query_string: bool = False
    consumer_headers: tuple[str, ...] = ("x-api-key", "authorization")
    metadata: Mapping[str, Any] | None = None
    identify_consumer: IdentifyConsumer | None = None


# Attribute values are str, bool, int, float or tuples/lists of them (the SDK's own
# cleaning), so plain type checks do.
_SEQUENCES: Final = (tuple, list)


def as_text(value: Any) -> str | None:
    """A string attribute value (the first item of a sequence), else ``None``."""
    if isinstance(value, str):
        return value
    if isinstance(value, _SEQUENCES) and value and isinstance(value[0], str):
        return value[0]
    return None


def as_int(value: Any) -> int | None:
    """An integer attribute value (also from a numeric string or a sequence), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    if isinstance(value, _SEQUENCES) and value:
        return as_int(value[0])
    return None


def _first_text(attributes: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    """The first non-empty string among ``keys``."""
    for key in keys:
        value = as_text(attributes.get(key))
        if value:
            return value
    return None


def _first_int(attributes: Mapping[str, Any], keys: Sequence[str]) -> int | None:
    """The first integer among ``keys``."""
    for key in keys:
        value = attributes.get(key)
        if type(value) is int:  # what the instrumentations set: no further call
            return value
        value = as_int(value)
        if value is not None:
            return value
    return None


def method_of(attributes: Mapping[str, Any]) -> str:
    """Upper case and bounded; the method as received when the convention says ``_OTHER``."""
    method = _first_text(attributes, METHOD) or ""
    if method == UNKNOWN_METHOD:
        method = _first_text(attributes, METHOD_ORIGINAL) or method
    return method.upper()[:MAX_METHOD]


def raw_path_and_query(attributes: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The raw path and query from the first path attribute present."""
    path = as_text(attributes.get(URL_PATH))
    if path is not None:
        return path, as_text(attributes.get(URL_QUERY))
    target = as_text(attributes.get(TARGET))
    if target is not None:
        path, sep, query = target.partition("?")
        if sep:
            return path, query
        own = as_text(attributes.get(OWN_QUERY))
        if own is not None:  # our hook's copy, where the instrumentation put none
            return path, own or None
        # ASGI's old-mode target has no query; the full URL still has it.
        url = as_text(attributes.get(FULL_URL[0]))
        return path, (urlsplit(url).query or None) if url and "?" in url else None
    path = as_text(attributes.get(OWN_PATH))
    if path is not None:
        return path, as_text(attributes.get(OWN_QUERY))
    url = _first_text(attributes, FULL_URL)
    if url:
        try:
            parts = urlsplit(url)
        except ValueError:
            return None, None
        return parts.path or "/", parts.query or None
    return None, None


def route_of(attributes: Mapping[str, Any]) -> str | None:
    """The route template with its leading ``/`` (Django's have none), if there is one."""
    route = as_text(attributes.get(ROUTE))
    if not route:
        return None
    return route if route.startswith("/") else "/" + route


def sorted_query(query: str) -> str:
    """The query's parameters sorted by name (stable: repeated names keep their order)."""
    params = [p for p in query.split("&") if p]
    params.sort(key=lambda p: p.partition("=")[0])
    return "&".join(params)


def path_of(attributes: Mapping[str, Any], rules: MappingRules) -> str:
    """The route (or raw path), plus the sorted query when it is collected; bounded."""
    raw, query = raw_path_and_query(attributes)
    path = route_of(attributes) if rules.route_first else None
    if path is None:
        path = raw if raw is not None else "/"
    if rules.collect_query_string and query:
        path = f"{path}?{sorted_query(query)}"
    return path[:MAX_PATH]


def status_of(attributes: Mapping[str, Any], span_status: StatusCode) -> int:
    """The HTTP status by the rule in this module's docstring; 0 when unknown."""
    status = _first_int(attributes, STATUS)
    if span_status is StatusCode.ERROR and (status is None or status < _FIRST_CLIENT_ERROR):
        return 500
    return 0 if status is None else status


def size_of(attributes: Mapping[str, Any], keys: Sequence[str]) -> int:
    """A body size (keys: :data:`~peekapi_otel._schema.REQUEST_SIZE` or
    ``RESPONSE_SIZE``) from the first key that holds an integer; 0 when unknown or
    negative."""
    for key in keys:  # _first_int, inline: twice per event
        value = attributes.get(key)
        if type(value) is not int:
            value = as_int(value)
            if value is None:
                continue
        return value if value >= 0 else 0
    return 0


def captured_headers(attributes: Mapping[str, Any]) -> dict[str, str]:
    """Request headers that header capture put on the span, by lower-case name."""
    start = len(REQUEST_HEADER)
    return {
        key[start:].replace("_", "-"): value
        for key, raw in attributes.items()
        if key.startswith(REQUEST_HEADER) and (value := as_text(raw)) is not None
    }


def identify(identify_consumer: IdentifyConsumer, headers: Mapping[str, str]) -> str | None:
    """The user's consumer ID for ``headers``; ``None`` (counted) when the callback raises."""
    try:
        result = identify_consumer(headers)
    except Exception as exc:  # noqa: BLE001 - user callback; counted, event kept
        STATS.drop("consumer_error", detail=f"identify_consumer raised {exc!r}")
        return None
    return str(result)[:MAX_CONSUMER] if result else None


def consumer_of(attributes: Mapping[str, Any], rules: MappingRules) -> str | None:
    """Our hook's consumer; else, when no hook saw the request, the user's callback or
    the default rule over the captured headers."""
    consumer = attributes.get(ATTR_CONSUMER)
    if isinstance(consumer, str) and consumer:
        return consumer[:MAX_CONSUMER]
    if ATTR_REQUEST_SIZE in attributes:
        return None  # a hook saw the raw request and found no consumer
    if rules.identify_consumer is not None:
        # Captured credential headers are already hashed or redacted.
        return identify(rules.identify_consumer, captured_headers(attributes))
    # The credential guard already replaced captured consumer headers by their hash.
    for name in rules.consumer_headers:
        value = as_text(attributes.get(REQUEST_HEADER + name.replace("-", "_")))
        if value:
            return value[:MAX_CONSUMER] if value.startswith("hash_") else hash_consumer(value)
    return None


def metadata_of(record: Record, rules: MappingRules) -> dict[str, Any]:
    """The static metadata, then the ids that link the event to its trace (a static
    ``trace_id``/``span_id`` is replaced by the span's)."""
    ids = {"trace_id": format(record.trace_id, "032x"), "span_id": format(record.span_id, "016x")}
    if not rules.metadata:
        return ids
    return {**{k: v for k, v in rules.metadata.items() if k not in ids}, **ids}


def event_of(record: Record, rules: MappingRules) -> Event:
    """The event for ``record``, fields in wire order."""
    attributes = record.attributes
    return {
        "method": method_of(attributes),
        "path": path_of(attributes, rules),
        "status_code": status_of(attributes, record.status_code),
        "response_time_ms": millis(record.end_ns - record.start_ns),
        "request_size": size_of(attributes, REQUEST_SIZE),
        "response_size": size_of(attributes, RESPONSE_SIZE),
        "consumer_id": consumer_of(attributes, rules),
        "metadata": metadata_of(record, rules),
        "timestamp": timestamp(record.start_ns),
    }
