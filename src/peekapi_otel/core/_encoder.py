"""Records to wire lines: the event of :func:`~peekapi_otel.core._mapping.event_of`,
written as compact JSON without building the dict.

The line is byte for byte ``json.dumps(event_of(record, rules), separators=(",", ":"),
ensure_ascii=False)``: the values come from the mapping's functions, strings go through
json's C string encoder, the times through :mod:`~peekapi_otel.core._timetext`, and the
method/path/status part is cached per route or raw path (it repeats across requests).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from json.encoder import encode_basestring
from typing import Any, Final

from opentelemetry.trace import StatusCode

from peekapi_otel._schema import (
    ATTR_CONSUMER,
    MAX_CONSUMER,
    METHOD,
    REQUEST_SIZE,
    RESPONSE_SIZE,
    ROUTE,
    STATUS,
    TARGET,
    UNKNOWN_METHOD,
    URL_PATH,
)
from peekapi_otel.core._mapping import (
    MappingRules,
    consumer_of,
    method_of,
    path_of,
    size_of,
    status_of,
)
from peekapi_otel.core._record import Record
from peekapi_otel.core._timetext import TimesWriter

#: Cached heads (method, path, status) per encoder; a scanner's random paths cannot grow
#: the cache past this.
HEADS_MAX: Final = 4096
_JSON: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)
# The head's cache key reads these by name: a loop or ``map`` over the tuples costs
# several times the four lookups (timeit, CPython 3.11: 1.1 us against 0.13 us).
_METHOD_NEW, _METHOD_OLD = METHOD
_STATUS_NEW, _STATUS_OLD = STATUS
_OWN_REQUEST_SIZE = REQUEST_SIZE[0]
_OWN_RESPONSE_SIZE = RESPONSE_SIZE[0]
#: Method values that decide the method alone (anything else may need METHOD_ORIGINAL).
_PLAIN_METHOD: Final = frozenset({str, type(None)})
_IDS: Final = ("trace_id", "span_id")
_ERROR: Final = StatusCode.ERROR


def encode_batch(lines: Sequence[bytes]) -> bytes:
    """A JSON array body from already-encoded events."""
    return b"[" + b",".join(lines) + b"]"


class EventEncoder:
    """Encodes :class:`~peekapi_otel.core._record.Record` objects to event lines.

    An event over ``max_event_bytes`` is written without its metadata; if still too
    large, :meth:`encode` returns ``None`` (the caller counts it).
    """

    def __init__(
        self,
        *,
        path_source: str = "route",
        collect_query_string: bool = False,
        consumer_headers: Sequence[str] = ("x-api-key", "authorization"),
        metadata: Mapping[str, Any] | None = None,
        identify_consumer: Callable[[Mapping[str, str]], str | None] | None = None,
        max_event_bytes: int = 65_536,
    ) -> None:
        self.rules = MappingRules(
            route_first=path_source == "route",
            collect_query_string=collect_query_string,
            consumer_headers=tuple(consumer_headers),
            metadata=dict(metadata) if metadata else None,
            identify_consumer=identify_consumer,
        )
        self._max = max_event_bytes
        static = {k: v for k, v in (metadata or {}).items() if k not in _IDS}
        # The static metadata is encoded once; the ids follow it (see metadata_of).
        self._metadata_start = _JSON.encode(static)[:-1] + "," if static else "{"
        self._times = TimesWriter()
        self._heads: dict[tuple[Any, ...], str] = {}

    def encode(self, record: Record) -> bytes | None:
        """The wire line for ``record``; ``None`` when it exceeds ``max_event_bytes``."""
        attributes, trace_int, span_int, start_ns, end_ns, status = record
        get = attributes.get
        # The first rule of size_of and consumer_of inline, for the values our hooks set
        # (a plain int, a non-empty str); anything else goes through them. Each Python
        # call saved is about 1,000 instructions per line (callgrind).
        request_size = get(_OWN_REQUEST_SIZE)
        if type(request_size) is not int or request_size < 0:
            request_size = size_of(attributes, REQUEST_SIZE)
        response_size = get(_OWN_RESPONSE_SIZE)
        if type(response_size) is not int or response_size < 0:
            response_size = size_of(attributes, RESPONSE_SIZE)
        consumer = get(ATTR_CONSUMER)
        if type(consumer) is not str or not consumer:
            consumer = consumer_of(attributes, self.rules)
        consumer_json = "null" if consumer is None else encode_basestring(consumer[:MAX_CONSUMER])
        try:  # a third of the cost of format(id, "032x")
            trace_id = trace_int.to_bytes(16, "big").hex()
            span_id = span_int.to_bytes(8, "big").hex()
        except OverflowError:  # not a valid id: written as it is
            trace_id, span_id = format(trace_int, "032x"), format(span_int, "016x")
        duration, timestamp = self._times.texts(start_ns, end_ns)
        start = (
            f"{self._head(attributes, status)}{duration},"
            f'"request_size":{request_size},"response_size":{response_size},'
            f'"consumer_id":{consumer_json},"metadata":'
        )
        end = f',"timestamp":"{timestamp}"}}'
        line = (
            f'{start}{self._metadata_start}"trace_id":"{trace_id}","span_id":"{span_id}"}}{end}'
        ).encode("utf-8", "surrogateescape")
        if len(line) <= self._max:
            return line
        line = f"{start}null{end}".encode("utf-8", "surrogateescape")
        return line if len(line) <= self._max else None

    def _head(self, attributes: Mapping[str, Any], status: StatusCode) -> str:
        """The line up to the ``response_time_ms`` value: method, path and status, cached
        by the values that decide them when those are plain (no collected query, which
        varies per request; string paths; a method that is not ``_OTHER``)."""
        rules = self.rules
        if rules.collect_query_string:
            return self._head_text(attributes, status)
        get = attributes.get
        # As path_of decides: a non-empty string route wins; else url.path, else the
        # target. Any other value type leaves the decision to the mapping, uncached.
        route = get(ROUTE) if rules.route_first else None
        path: Any
        if route:
            if type(route) is not str:
                return self._head_text(attributes, status)
            source, path = ROUTE, route
        else:
            source, path = URL_PATH, get(URL_PATH)
            if path is None:
                source, path = TARGET, get(TARGET)
            if type(path) is not str:
                return self._head_text(attributes, status)
        method_new, method_old = get(_METHOD_NEW), get(_METHOD_OLD)
        if (
            type(method_new) not in _PLAIN_METHOD
            or type(method_old) not in _PLAIN_METHOD
            or UNKNOWN_METHOD in (method_new, method_old)
        ):
            return self._head_text(attributes, status)
        # The span status as a bool: StatusCode's hash is a Python call.
        failed = status is _ERROR
        key = (source, path, failed, method_new, method_old, get(_STATUS_NEW), get(_STATUS_OLD))
        try:
            head = self._heads.get(key)
        except TypeError:  # an unhashable (list) status value
            return self._head_text(attributes, status)
        if head is None:
            head = self._head_text(attributes, status)
            if len(self._heads) >= HEADS_MAX:
                self._heads.clear()
            self._heads[key] = head
        return head

    def _head_text(self, attributes: Mapping[str, Any], span_status: StatusCode) -> str:
        method = encode_basestring(method_of(attributes))
        path = encode_basestring(path_of(attributes, self.rules))
        status = status_of(attributes, span_status)
        return f'{{"method":{method},"path":{path},"status_code":{status},"response_time_ms":'
