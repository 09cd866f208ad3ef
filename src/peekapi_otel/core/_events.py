"""Span to PeekAPI event: pure functions, no I/O. The wire schema lives here only."""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from json.encoder import encode_basestring
from typing import Any, Final
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, StatusCode

from peekapi_otel.core._stats import STATS
from peekapi_otel.otel._sdk import IS_REMOTE, SPAN_ID, TRACE_ID, TUPLE_LAYOUT

Event = dict[str, Any]

MAX_METHOD: Final = 16
MAX_PATH: Final = 2048
MAX_CONSUMER: Final = 256

# Attributes our own hooks put on a span (peekapi.* only).
ATTR_CONSUMER: Final = "peekapi.consumer_id"
ATTR_REQUEST_SIZE: Final = "peekapi.request_size"
ATTR_RESPONSE_SIZE: Final = "peekapi.response_size"
ATTR_METHOD: Final = "peekapi.method"
ATTR_PATH: Final = "peekapi.path"
ATTR_QUERY: Final = "peekapi.query"

_UTC: Final = datetime.timezone.utc
_REQ_LEN: Final = "http.request.header.content_length"
_RESP_LEN: Final = "http.response.header.content_length"
_HEADS_MAX: Final = 4096  # cached line heads (path, method, status) and consumers per encoder
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


# Few distinct consumers send most requests: remember their hashes (the raw values are
# in this process's memory anyway, and never leave it).
@functools.lru_cache(maxsize=4096)
def hash_consumer(value: str) -> str:
    """The default consumer ID: ``hash_`` + 12 hex chars of SHA-256 of the full value."""
    return "hash_" + hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def is_request_span(span: ReadableSpan) -> bool:
    """One event per request: a local-root SERVER span that carries an HTTP method."""
    try:
        # The SDK's own fields: this runs for every SERVER span the app ends.
        kind = span._kind
        parent = span._parent
        attrs = span._attributes._dict  # type: ignore[union-attr]
    except AttributeError:
        kind = span.kind
        parent = span.parent
        attrs = None
    if kind is not SpanKind.SERVER:
        return False
    if parent is not None:
        if TUPLE_LAYOUT and type(parent) is SpanContext:
            if not parent[IS_REMOTE]:
                return False
        elif not parent.is_remote:
            return False
    if type(attrs) is not dict:
        attrs = _raw_attributes(span)
    return "http.request.method" in attrs or "http.method" in attrs


# Attribute values are str, bool, int, float or tuples/lists of them (the SDK's own
# cleaning), so plain type checks do; an ABC isinstance costs far more per call.
_SEQUENCES: Final = (tuple, list)


def _str(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, _SEQUENCES) and value and isinstance(value[0], str):
        return value[0]
    return None


def _int(value: Any) -> int | None:
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
        return _int(value[0])
    return None


def _method(attrs: Mapping[str, Any]) -> str:
    method = _str(attrs.get("http.request.method")) or _str(attrs.get("http.method")) or ""
    if method == "_OTHER":
        method = (
            _str(attrs.get("http.request.method_original"))
            or _str(attrs.get(ATTR_METHOD))
            or method
        )
    return method.upper()[:MAX_METHOD]


def _raw_path_and_query(attrs: Mapping[str, Any]) -> tuple[str | None, str | None]:
    path = _str(attrs.get("url.path"))
    if path is not None:
        return path, _str(attrs.get("url.query"))
    target = _str(attrs.get("http.target"))
    if target is not None:
        path, sep, query = target.partition("?")
        if sep:
            return path, query
        # ASGI's old-mode target has no query; the full URL still has it.
        url = _str(attrs.get("http.url"))
        return path, (urlsplit(url).query or None) if url and "?" in url else None
    path = _str(attrs.get(ATTR_PATH))
    if path is not None:
        return path, _str(attrs.get(ATTR_QUERY))
    url = _str(attrs.get("http.url")) or _str(attrs.get("url.full"))
    if url:
        try:
            parts = urlsplit(url)
        except ValueError:
            return None, None
        return parts.path or "/", parts.query or None
    return None, None


def _path(span: ReadableSpan, attrs: Mapping[str, Any], route_first: bool) -> tuple[str, str]:
    raw, query = _raw_path_and_query(attrs)
    path: str | None = None
    if route_first:
        route = _str(attrs.get("http.route"))
        if route:
            path = route if route.startswith("/") else "/" + route
    if path is None:
        path = raw
    if path is None:
        # Last resort: "GET /items/{id}" style span names.
        _, _, rest = span.name.partition(" ")
        path = rest if rest.startswith("/") else "/"
    return path, query or ""


def _sorted_query(query: str) -> str:
    params = [p for p in query.split("&") if p]
    params.sort(key=lambda p: p.partition("=")[0])
    return "&".join(params)


def _status(span: ReadableSpan, attrs: Mapping[str, Any]) -> int:
    status = _int(attrs.get("http.response.status_code"))
    if status is None:
        status = _int(attrs.get("http.status_code"))
    if status is not None:
        return status
    # Starlette and raw ASGI: the 500 is produced outside the OTel middleware.
    if span.status.status_code is StatusCode.ERROR:
        return 500
    if any(e.name == "exception" for e in span.events):
        return 500
    return 0


def _size(attrs: Mapping[str, Any], own: str, header: str) -> int:
    size = _int(attrs.get(own))
    if size is None:
        size = _int(attrs.get(header))
    return size if size is not None and size >= 0 else 0


def _captured_headers(attrs: Mapping[str, Any]) -> dict[str, str]:
    prefix = "http.request.header."
    return {
        k[len(prefix) :].replace("_", "-"): v
        for k, raw in attrs.items()
        if k.startswith(prefix) and (v := _str(raw)) is not None
    }


def identify(
    identify_consumer: Callable[[Mapping[str, str]], str | None], headers: Mapping[str, str]
) -> str | None:
    """The user's consumer ID for ``headers``; ``None`` (counted) when the callback raises."""
    try:
        result = identify_consumer(headers)
    except Exception as exc:  # noqa: BLE001 - user callback; counted, event kept
        STATS.drop("consumer_error", detail=f"identify_consumer raised {exc!r}")
        return None
    return str(result)[:MAX_CONSUMER] if result else None


def _consumer(
    attrs: Mapping[str, Any],
    consumer_headers: Sequence[str],
    identify_consumer: Callable[[Mapping[str, str]], str | None] | None,
) -> str | None:
    consumer = attrs.get(ATTR_CONSUMER)
    if isinstance(consumer, str) and consumer:
        return consumer[:MAX_CONSUMER]
    if ATTR_REQUEST_SIZE in attrs:
        return None  # a hook saw the raw request and found no consumer
    if identify_consumer is not None:
        # No hook saw the raw request: offer what header capture recorded (credential
        # headers already hashed or redacted).
        return identify(identify_consumer, _captured_headers(attrs))
    # No hook ran: the credential guard already replaced captured consumer headers
    # by their hash, so the value can be used as it is.
    for name in consumer_headers:
        value = _str(attrs.get("http.request.header." + name.replace("-", "_")))
        if value:
            return value[:MAX_CONSUMER] if value.startswith("hash_") else hash_consumer(value)
    return None


def millis(ns: int) -> float:
    """A duration in ns as milliseconds with 2 decimals, half up, never negative."""
    return (ns + 5_000) // 10_000 / 100 if ns > 0 else 0.0


#: ".01" ... ".99" as ``repr`` writes the fraction of a float with at most two decimals.
_HUNDREDTHS: Final = tuple("." + (f"{n:02d}".rstrip("0") or "0") for n in range(100))
#: "000" ... "999": microseconds are written as two of these.
_THOUSANDS: Final = tuple(f"{n:03d}" for n in range(1000))
#: ".000" ... ".999": the milliseconds of a timestamp with its decimal point.
_DOT_THOUSANDS: Final = tuple("." + t for t in _THOUSANDS)
#: Below this many hundredths, ``repr(hundredths / 100)`` is the plain decimal.
_PLAIN_DECIMAL: Final = 10**15
_NO_RESOURCE: Final = Resource.get_empty()


def _millis_text(ns: int) -> str:
    """``repr(millis(ns))``, from integer arithmetic and a table."""
    if ns <= 0:
        return "0.0"
    hundredths = (ns + 5_000) // 10_000
    if hundredths >= _PLAIN_DECIMAL:
        return repr(hundredths / 100)
    whole, fraction = divmod(hundredths, 100)
    return f"{whole}{_HUNDREDTHS[fraction]}"


def timestamp(ns: int) -> str:
    seconds, rem = divmod(ns, 1_000_000_000)
    moment = datetime.datetime.fromtimestamp(seconds, _UTC).replace(microsecond=rem // 1000)
    return moment.isoformat()


def span_to_event(
    span: ReadableSpan,
    *,
    path_source: str = "route",
    collect_query_string: bool = False,
    consumer_headers: Sequence[str] = ("x-api-key", "authorization"),
    metadata: Mapping[str, Any] | None = None,
    identify_consumer: Callable[[Mapping[str, str]], str | None] | None = None,
) -> Event:
    """Build the PeekAPI event for a request span (see :func:`is_request_span`)."""
    attrs = _raw_attributes(span)
    path, query = _path(span, attrs, path_source == "route")
    if collect_query_string and query:
        path = f"{path}?{_sorted_query(query)}"
    start = span.start_time or 0
    end = span.end_time or start
    ctx = span.context
    meta: dict[str, Any] = dict(metadata) if metadata else {}
    if ctx is not None:
        meta["trace_id"] = format(ctx.trace_id, "032x")
        meta["span_id"] = format(ctx.span_id, "016x")
    return {
        "method": _method(attrs),
        "path": path[:MAX_PATH],
        "status_code": _status(span, attrs),
        "response_time_ms": millis(end - start),
        "request_size": _size(attrs, ATTR_REQUEST_SIZE, _REQ_LEN),
        "response_size": _size(attrs, ATTR_RESPONSE_SIZE, _RESP_LEN),
        "consumer_id": _consumer(attrs, consumer_headers, identify_consumer),
        "metadata": meta or None,
        "timestamp": timestamp(start),
    }


def encode_event(event: Event, max_bytes: int) -> bytes | None:
    """Compact JSON for one event; drops ``metadata`` if too large; ``None`` if still too large."""
    data = _ENCODER.encode(event).encode("utf-8", "surrogateescape")
    if len(data) <= max_bytes:
        return data
    if event.get("metadata") is not None:
        event = {**event, "metadata": None}
        data = _ENCODER.encode(event).encode("utf-8", "surrogateescape")
        if len(data) <= max_bytes:
            return data
    return None


def encode_batch(lines: Sequence[bytes]) -> bytes:
    """A JSON array body from already-encoded events."""
    return b"[" + b",".join(lines) + b"]"


def _raw_attributes(span: ReadableSpan) -> Mapping[str, Any]:
    # The plain dict under the read-only view: every lookup through the view is Python
    # code (Mapping.get and a KeyError per miss), and an event makes a dozen of them.
    try:
        raw = span._attributes._dict  # type: ignore[union-attr]
    except AttributeError:
        return span.attributes or {}
    if type(raw) is dict:
        return raw
    return span.attributes or {}


#: What a request span's event is made of when its attributes alone decide method, path
#: and status: the attribute dict, the span context, start and end. Queuing this instead
#: of the span frees the span (and its garbage-collected parts) at once.
Record = tuple[dict[str, Any], SpanContext, int, int]


def record(span: ReadableSpan) -> Record | None:
    """The span's :data:`Record`, or ``None`` when its event needs more of the span (no
    int status code or no raw path attribute, or not the SDK's own span)."""
    try:
        attrs = span._attributes._dict  # type: ignore[union-attr]
        fields = (attrs, span._context, span._start_time, span._end_time)
    except AttributeError:
        return None
    if type(attrs) is not dict:
        return None
    get = attrs.get
    status = get("http.response.status_code")
    if status is None:
        status = get("http.status_code")
    path = get("url.path")
    if path is None:
        path = get("http.target")
    if type(status) is int and type(path) is str and None not in fields:
        return fields  # type: ignore[return-value]  # checked: no None
    return None


def _stand_in(
    attrs: Any, ctx: SpanContext | None = None, start: int | None = None, end: int | None = None
) -> ReadableSpan:
    """A span rebuilt from a :data:`Record` for the encoder's fallbacks: with an int
    status code and a raw path attribute, the event needs nothing else of the span.
    (The explicit resource matters: the default one runs the resource detectors.)"""
    return ReadableSpan(
        name="",
        context=ctx,
        attributes=attrs,
        kind=SpanKind.SERVER,
        start_time=start,
        end_time=end,
        resource=_NO_RESOURCE,
    )


class EventEncoder:
    """Encodes request spans straight to the wire line.

    The output is byte for byte ``encode_event(span_to_event(span, ...))``: the fields
    come from the same functions, only the serialisation is a template (json's C string
    encoder for strings) and the timestamp's date part is cached per second.
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
        self._route_first = path_source == "route"
        self._query = collect_query_string
        self._consumer_headers = tuple(consumer_headers)
        self._metadata = dict(metadata) if metadata else None
        self._identify = identify_consumer
        self._max = max_event_bytes
        # Static metadata is encoded once; the ids follow it as span_to_event orders them.
        # A user key named trace_id/span_id would change that order: use the slow path.
        self._meta_prefix: str | None = "{"
        if self._metadata:
            if "trace_id" in self._metadata or "span_id" in self._metadata:
                self._meta_prefix = None
            else:
                self._meta_prefix = _ENCODER.encode(self._metadata)[:-1] + ","
        self._second: tuple[int, str] = (-1, "")
        self._heads: dict[tuple[Any, ...], str] = {}
        self._consumers: dict[str, str] = {}  # consumer ID -> its JSON string

    def _slow(self, span: ReadableSpan) -> bytes | None:
        event = span_to_event(
            span,
            path_source="route" if self._route_first else "raw",
            collect_query_string=self._query,
            consumer_headers=self._consumer_headers,
            metadata=self._metadata,
            identify_consumer=self._identify,
        )
        return encode_event(event, self._max)

    def encode(self, span: ReadableSpan) -> bytes | None:
        """The wire line for ``span``; ``None`` when it exceeds ``max_event_bytes``."""
        try:
            # The SDK's own fields: the public properties are Python calls, and this
            # runs once per request.
            ctx = span._context
            attrs = span._attributes._dict  # type: ignore[union-attr]
            start = span._start_time
            end = span._end_time
        except AttributeError:
            return self._slow(span)
        return self._fast(span, attrs, ctx, start, end)

    def encode_record(self, record: Record) -> bytes | None:
        """The wire line for a span's :func:`record`, as :meth:`encode` writes it."""
        attrs, ctx, start, end = record
        return self._fast(None, attrs, ctx, start, end)

    def _fast(
        self,
        span: ReadableSpan | None,
        attrs: Any,
        ctx: SpanContext | None,
        start: int | None,
        end: int | None,
    ) -> bytes | None:
        if (
            ctx is None
            or type(attrs) is not dict
            or start is None
            or end is None
            or self._meta_prefix is None
        ):
            return self._slow(span or _stand_in(attrs, ctx, start, end))
        get = attrs.get
        # Method, path and status repeat across requests: their encoded form is cached
        # when it depends on the key alone (a plain method and an int status, and a
        # route or a raw path attribute).
        key: tuple[Any, ...] | None = None
        method = get("http.request.method")
        if method is None:
            method = get("http.method")
        status = get("http.response.status_code")
        if status is None:
            status = get("http.status_code")
        if type(method) is str and method and method != "_OTHER" and type(status) is int:
            route = get("http.route") if self._route_first and not self._query else None
            if type(route) is str and route:
                key = (True, route, method, status)
            elif not self._query:
                raw = get("url.path")
                if raw is None:
                    raw = get("http.target")
                if type(raw) is str:
                    key = (False, raw, method, status)
        head: str | None = None
        if key is not None:
            heads = self._heads
            head = heads.get(key)
            if head is None:
                head = self._head(span, attrs)
                if len(heads) >= _HEADS_MAX:
                    heads.clear()
                heads[key] = head
        else:
            head = self._head(span, attrs)
        request_size = get(ATTR_REQUEST_SIZE)
        if type(request_size) is not int or request_size < 0:
            request_size = _size(attrs, ATTR_REQUEST_SIZE, _REQ_LEN)
        response_size = get(ATTR_RESPONSE_SIZE)
        if type(response_size) is not int or response_size < 0:
            response_size = _size(attrs, ATTR_RESPONSE_SIZE, _RESP_LEN)
        consumer = get(ATTR_CONSUMER)
        if type(consumer) is str and consumer:
            encoded = self._consumers.get(consumer)
            if encoded is None:
                encoded = encode_basestring(consumer[:MAX_CONSUMER])
                if len(self._consumers) >= _HEADS_MAX:
                    self._consumers.clear()
                self._consumers[consumer] = encoded
            consumer = encoded
        elif ATTR_REQUEST_SIZE in attrs:
            consumer = "null"
        else:
            consumer = _consumer(attrs, self._consumer_headers, self._identify)
            consumer = "null" if consumer is None else encode_basestring(consumer)
        # The timestamp and the duration from integers and tables: this is most of
        # the line's cost.
        seconds = start // 1_000_000_000
        second = self._second
        if second[0] != seconds:
            second = self._second = (seconds, _second_text(seconds))
        micros = start // 1_000 % 1_000_000
        if micros:
            high, low = _DOT_THOUSANDS[micros // 1_000], _THOUSANDS[micros % 1_000]
        else:
            high = low = ""  # as isoformat() writes a whole second
        duration = end - start
        hundredths = (duration + 5_000) // 10_000 if duration > 0 else 0
        if hundredths < _PLAIN_DECIMAL:  # as _millis_text(duration), without the call
            whole: int | str = hundredths // 100
            fraction = _HUNDREDTHS[hundredths % 100]
        else:
            whole, fraction = _millis_text(duration), ""
        if TUPLE_LAYOUT and type(ctx) is SpanContext:
            trace_int, span_int = ctx[TRACE_ID], ctx[SPAN_ID]
        else:
            trace_int, span_int = ctx.trace_id, ctx.span_id
        try:
            trace_id = trace_int.to_bytes(16, "big").hex()
            span_id = span_int.to_bytes(8, "big").hex()
        except OverflowError:  # not a valid id: the slow path writes it as it is
            return self._slow(span or _stand_in(attrs, ctx, start, end))
        line = (
            f"{head}{whole}{fraction},"
            f'"request_size":{request_size},"response_size":{response_size},'
            f'"consumer_id":{consumer},"metadata":{self._meta_prefix}'
            f'"trace_id":"{trace_id}","span_id":"{span_id}"}},'
            f'"timestamp":"{second[1]}{high}{low}+00:00"}}'
        ).encode("utf-8", "surrogateescape")
        if len(line) > self._max:
            # Drops metadata, or gives up, exactly as the slow path.
            return self._slow(span or _stand_in(attrs, ctx, start, end))
        return line

    def _head(self, span: ReadableSpan | None, attrs: Mapping[str, Any]) -> str:
        """The line up to the ``response_time_ms`` value: method, path and status
        (``span`` is ``None`` for a record, whose fallbacks need only its attributes)."""
        get = attrs.get
        # Each field has an inline branch for the values the instrumentations set (plain
        # str and int) and falls back to the shared helper for anything else, so the
        # output stays that of span_to_event.
        path: str | None = None
        if self._query:
            path, query = _path(span or _stand_in(attrs), attrs, self._route_first)
            if query:
                path = f"{path}?{_sorted_query(query)}"
        else:
            if self._route_first:
                route = get("http.route")
                if type(route) is str and route:
                    path = route if route[:1] == "/" else "/" + route
            if path is None:
                raw = get("url.path")
                if raw is None:
                    raw = get("http.target")
                    if type(raw) is str:
                        path = raw.partition("?")[0]
                elif type(raw) is str:
                    path = raw
            if path is None:
                path = _path(span or _stand_in(attrs), attrs, self._route_first)[0]
        method = get("http.request.method")
        if method is None:
            method = get("http.method")
        if type(method) is str and method and method != "_OTHER":
            method = method.upper()[:MAX_METHOD]
        else:
            method = _method(attrs)
        status = get("http.response.status_code")
        if status is None:
            status = get("http.status_code")
        if type(status) is not int:
            status = _status(span or _stand_in(attrs), attrs)
        return (
            f'{{"method":{encode_basestring(method)},"path":{encode_basestring(path[:MAX_PATH])},'
            f'"status_code":{status},"response_time_ms":'
        )


def _second_text(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, _UTC).strftime("%Y-%m-%dT%H:%M:%S")
