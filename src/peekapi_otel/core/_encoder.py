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
    METHOD,
    METHOD_ORIGINAL,
    ROUTE,
    STATUS,
    TARGET,
    URL_PATH,
)
from peekapi_otel.core._mapping import (
    MappingRules,
    consumer_of,
    method_of,
    path_of,
    request_size_of,
    response_size_of,
    status_of,
)
from peekapi_otel.core._record import Record
from peekapi_otel.core._timetext import TimestampWriter, millis_text

#: Cached heads (method, path, status) per encoder; a scanner's random paths cannot grow
#: the cache past this.
HEADS_MAX: Final = 4096
_JSON: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)
#: Besides the path attribute, what the head depends on.
_HEAD_ATTRIBUTES: Final = (*METHOD, *METHOD_ORIGINAL, *STATUS)
_IDS: Final = ("trace_id", "span_id")


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
        self._timestamps = TimestampWriter()
        self._heads: dict[tuple[Any, ...], str] = {}

    def encode(self, record: Record) -> bytes | None:
        """The wire line for ``record``; ``None`` when it exceeds ``max_event_bytes``."""
        attributes = record.attributes
        start = (
            f"{self._head(record)}{millis_text(record.end_ns - record.start_ns)},"
            f'"request_size":{request_size_of(attributes)},'
            f'"response_size":{response_size_of(attributes)},'
            f'"consumer_id":{_json_string_or_null(consumer_of(attributes, self.rules))},'
            '"metadata":'
        )
        end = f',"timestamp":"{self._timestamps.text(record.start_ns)}"}}'
        line = (start + self._metadata_text(record) + end).encode("utf-8", "surrogateescape")
        if len(line) <= self._max:
            return line
        line = (start + "null" + end).encode("utf-8", "surrogateescape")
        return line if len(line) <= self._max else None

    def _metadata_text(self, record: Record) -> str:
        return (
            f'{self._metadata_start}"trace_id":"{record.trace_id:032x}",'
            f'"span_id":"{record.span_id:016x}"}}'
        )

    def _head(self, record: Record) -> str:
        """The line up to the ``response_time_ms`` value: method, path and status."""
        key = self._head_key(record.attributes, record.status_code)
        if key is None:
            return self._head_text(record)
        try:
            head = self._heads.get(key)
        except TypeError:  # an unhashable (list) attribute value
            return self._head_text(record)
        if head is None:
            head = self._head_text(record)
            if len(self._heads) >= HEADS_MAX:
                self._heads.clear()
            self._heads[key] = head
        return head

    def _head_key(
        self, attributes: Mapping[str, Any], status: StatusCode
    ) -> tuple[Any, ...] | None:
        """The values that decide the head, or ``None`` when they are not plain enough to
        be a cache key (a collected query varies per request)."""
        rules = self.rules
        if rules.collect_query_string:
            return None
        get = attributes.get
        # As path_of decides: a non-empty string route wins; else url.path, else the
        # target. Any other value type leaves the decision to the mapping, uncached.
        route = get(ROUTE) if rules.route_first else None
        if route:
            if type(route) is not str:
                return None
            source: tuple[str, str] = (ROUTE, route)
        else:
            raw, name = get(URL_PATH), URL_PATH
            if raw is None:
                raw, name = get(TARGET), TARGET
            if type(raw) is not str:
                return None
            source = (name, raw)
        return (*source, status, *map(get, _HEAD_ATTRIBUTES))

    def _head_text(self, record: Record) -> str:
        attributes = record.attributes
        method = encode_basestring(method_of(attributes))
        path = encode_basestring(path_of(attributes, self.rules))
        status = status_of(attributes, record.status_code)
        return f'{{"method":{method},"path":{path},"status_code":{status},"response_time_ms":'


def _json_string_or_null(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)
