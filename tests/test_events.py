"""Span to event, unit level: every field, every fallback, all semconv key sets, and the
encoder's line against the mapping's event."""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from peekapi_otel._schema import FIELD_NAMES, event_problem
from peekapi_otel.core._encoder import HEADS_MAX, EventEncoder
from peekapi_otel.core._hashing import hash_consumer
from peekapi_otel.core._mapping import Event, event_of
from peekapi_otel.core._record import Record, is_request_span, record_of_span
from peekapi_otel.core._timetext import TimesWriter, millis
from peekapi_otel.otel import _sdk

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0x00F067AA0BA902B7
START = 1_764_000_000_123_456_789  # ns since the epoch
END = START + 12_345_678  # 12.345678 ms later

OLD = {"http.method": "GET", "http.target": "/items/7?b=2&a=1", "http.status_code": 200}
NEW = {
    "http.request.method": "GET",
    "url.path": "/items/7",
    "url.query": "b=2&a=1",
    "http.response.status_code": 200,
}
DUP = {**OLD, **NEW}
MODES = pytest.mark.parametrize("base", [OLD, NEW, DUP], ids=["default", "http", "http-dup"])


def sha(value: str) -> str:
    return "hash_" + hashlib.sha256(value.encode()).hexdigest()[:12]


def make_span(
    attributes: Mapping[str, Any] | None = None,
    *,
    kind: SpanKind = SpanKind.SERVER,
    parent: SpanContext | None = None,
    name: str = "GET",
    status: Status | None = None,
    start: int | None = START,
    end: int | None = END,
) -> ReadableSpan:
    context = SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(1))
    return ReadableSpan(
        name=name,
        context=context,
        parent=parent,
        attributes=dict(attributes or {}),
        kind=kind,
        status=status or Status(StatusCode.UNSET),
        start_time=start,
        end_time=end,
    )


_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def span_to_event(span: ReadableSpan, **options: Any) -> Event:
    """The event the encoder writes for ``span``, decoded."""
    line = EventEncoder(**options).encode(_sdk.record_of(span))
    assert line is not None
    event: Event = json.loads(line)
    return event


def sdk_span(
    attributes: Mapping[str, Any],
    *,
    name: str = "GET /x",
    start: int = START,
    end: int = END,
    error: bool = False,
) -> ReadableSpan:
    """An ended span of the SDK's own class (the one the fast span reads know)."""
    tracer = TracerProvider().get_tracer("events")
    span = tracer.start_span(name, kind=SpanKind.SERVER, attributes=attributes, start_time=start)
    if error:
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=end)
    return span  # type: ignore[return-value]


def remote_parent(remote: bool) -> SpanContext:
    return SpanContext(TRACE_ID, 0x1111, is_remote=remote, trace_flags=TraceFlags(1))


# --- which spans are requests -------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "kind", "parent", "expected"),
    [
        ({"http.method": "GET"}, SpanKind.SERVER, None, True),
        ({"http.request.method": "GET"}, SpanKind.SERVER, None, True),
        ({"http.request.method": "GET"}, SpanKind.SERVER, remote_parent(True), True),
        ({"http.request.method": "GET"}, SpanKind.SERVER, remote_parent(False), False),
        ({"http.request.method": "GET"}, SpanKind.INTERNAL, None, False),
        ({"http.request.method": "GET"}, SpanKind.CLIENT, None, False),
        ({"url.path": "/ws"}, SpanKind.SERVER, None, False),  # websocket: no method
        ({"rpc.system": "grpc"}, SpanKind.SERVER, None, False),
        ({}, SpanKind.SERVER, None, False),
    ],
)
def test_is_request_span(
    attributes: dict[str, Any], kind: SpanKind, parent: SpanContext | None, expected: bool
) -> None:
    assert is_request_span(make_span(attributes, kind=kind, parent=parent)) is expected


# --- every field, every semconv mode ------------------------------------------------


@MODES
def test_every_field(base: dict[str, Any]) -> None:
    span = make_span({**base, "http.route": "/items/{item_id}"}, name="GET /items/{item_id}")
    event = span_to_event(span, metadata={"service": "shop"})
    assert tuple(event) == FIELD_NAMES
    assert event == {
        "method": "GET",
        "path": "/items/{item_id}",
        "status_code": 200,
        "response_time_ms": 12.35,
        "request_size": 0,
        "response_size": 0,
        "consumer_id": None,
        "metadata": {
            "service": "shop",
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "span_id": "00f067aa0ba902b7",
        },
        "timestamp": "2025-11-24T16:00:00.123456+00:00",
    }
    stamp = datetime.datetime.fromisoformat(event["timestamp"])
    assert stamp.utcoffset() == datetime.timedelta(0)
    assert stamp == datetime.datetime.fromtimestamp(START // 1000 / 1e6, datetime.timezone.utc)


@MODES
def test_raw_path_without_route_and_query_off(base: dict[str, Any]) -> None:
    assert span_to_event(make_span(base))["path"] == "/items/7"


@MODES
def test_query_is_sorted_by_name(base: dict[str, Any]) -> None:
    event = span_to_event(make_span(base), collect_query_string=True)
    assert event["path"] == "/items/7?a=1&b=2"
    routed = make_span({**base, "http.route": "/items/{id}"})
    assert span_to_event(routed, collect_query_string=True)["path"] == "/items/{id}?a=1&b=2"


def test_query_sort_is_stable_for_repeated_names_and_keeps_values() -> None:
    span = make_span({"http.method": "GET", "http.target": "/s?z=1&a=2&z=0&m&a=1"})
    event = span_to_event(span, collect_query_string=True)
    assert event["path"] == "/s?a=2&a=1&m&z=1&z=0"


def test_asgi_old_mode_takes_the_query_from_the_url() -> None:
    span = make_span({"http.method": "GET", "http.target": "/s", "http.url": "http://h/s?y=1&x=2"})
    assert span_to_event(span, collect_query_string=True)["path"] == "/s?x=2&y=1"
    assert span_to_event(span)["path"] == "/s"


def test_no_query_no_question_mark() -> None:
    span = make_span({"http.request.method": "GET", "url.path": "/s"})
    assert span_to_event(span, collect_query_string=True)["path"] == "/s"


def test_django_route_gets_its_leading_slash() -> None:
    span = make_span({**NEW, "http.route": "items/<int:item_id>"})
    assert span_to_event(span)["path"] == "/items/<int:item_id>"


def test_path_source_raw_ignores_the_route() -> None:
    span = make_span({**NEW, "http.route": "/items/{item_id}"})
    assert span_to_event(span, path_source="raw")["path"] == "/items/7"


def test_path_falls_back_to_our_hook_then_the_url_then_the_span_name() -> None:
    hooked = make_span({"http.request.method": "GET", "peekapi.path": "/p", "peekapi.query": "b&a"})
    assert span_to_event(hooked, collect_query_string=True)["path"] == "/p?a&b"
    url = make_span({"http.method": "GET", "http.url": "http://h:1/u/v?q=1"})
    assert span_to_event(url)["path"] == "/u/v"
    named = make_span({"http.method": "GET"}, name="GET /named")
    assert span_to_event(named)["path"] == "/named"
    nothing = make_span({"http.method": "GET"}, name="GET")
    assert span_to_event(nothing)["path"] == "/"


def test_long_path_is_cut() -> None:
    span = make_span({"http.request.method": "GET", "url.path": "/" + "a" * 5000})
    assert len(span_to_event(span)["path"]) == 2048


# --- method -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attributes",
    [
        {"http.request.method": "_OTHER", "http.request.method_original": "PURGE"},
        {"http.method": "_OTHER", "peekapi.method": "PURGE"},
        {"http.method": "_OTHER", "http.request.method": "_OTHER", "peekapi.method": "PURGE"},
    ],
)
def test_unknown_method_is_the_original(attributes: dict[str, Any]) -> None:
    assert span_to_event(make_span(attributes))["method"] == "PURGE"


def test_method_is_upper_case_and_bounded() -> None:
    assert span_to_event(make_span({"http.method": "get"}))["method"] == "GET"
    long = span_to_event(make_span({"http.method": "X" * 40}))["method"]
    assert long == "X" * 16


# --- status -------------------------------------------------------------------------


def test_error_without_status_code_is_500() -> None:
    span = make_span({"http.request.method": "GET"}, status=Status(StatusCode.ERROR, "boom"))
    assert span_to_event(span)["status_code"] == 500


@pytest.mark.parametrize(("recorded", "expected"), [(503, 503), (500, 500), (404, 404), (403, 403)])
def test_recorded_error_status_wins_over_the_span_error(recorded: int, expected: int) -> None:
    """A 4xx on an error span stays (Django ends a view's ``Http404`` in error)."""
    span = make_span(
        {"http.method": "GET", "http.status_code": recorded}, status=Status(StatusCode.ERROR)
    )
    assert span_to_event(span)["status_code"] == expected


@pytest.mark.parametrize("recorded", [200, 206, 302])
def test_success_status_on_an_error_span_is_500(recorded: int) -> None:
    """The status line went out, then the response failed (a stream that raised)."""
    span = make_span(
        {"http.method": "GET", "http.response.status_code": recorded},
        status=Status(StatusCode.ERROR, "generator raised"),
    )
    assert span_to_event(span)["status_code"] == 500
    ok = make_span({"http.method": "GET", "http.response.status_code": recorded})
    assert span_to_event(ok)["status_code"] == recorded


def test_no_status_at_all_is_0() -> None:
    assert span_to_event(make_span({"http.method": "GET"}))["status_code"] == 0


# --- sizes --------------------------------------------------------------------------


def test_sizes_from_our_hooks_then_captured_content_length() -> None:
    ours = make_span(
        {
            "http.method": "POST",
            "peekapi.request_size": 25,
            "peekapi.response_size": 37,
            "http.request.header.content_length": ("99",),
        }
    )
    event = span_to_event(ours)
    assert (event["request_size"], event["response_size"]) == (25, 37)
    captured = make_span(
        {
            "http.method": "POST",
            "http.request.header.content_length": ("12",),
            "http.response.header.content_length": ("34",),
        }
    )
    event = span_to_event(captured)
    assert (event["request_size"], event["response_size"]) == (12, 34)


@pytest.mark.parametrize("bad", [-5, "abc", True, ("x",)])
def test_bad_sizes_become_0(bad: Any) -> None:
    span = make_span({"http.method": "GET", "peekapi.response_size": bad})
    assert span_to_event(span)["response_size"] == 0


# --- timing -------------------------------------------------------------------------


def test_response_time_has_two_decimals_and_is_never_negative() -> None:
    event = span_to_event(make_span({"http.method": "GET"}, end=START + 1_234_567))
    assert event["response_time_ms"] == 1.23
    backwards = span_to_event(make_span({"http.method": "GET"}, end=START - 10))
    assert backwards["response_time_ms"] == 0.0
    unended = span_to_event(make_span({"http.method": "GET"}, end=None))
    assert unended["response_time_ms"] == 0.0


# --- consumer -----------------------------------------------------------------------


def test_hash_rule() -> None:
    assert hash_consumer("Bearer abc") == sha("Bearer abc")
    assert len(hash_consumer("x")) == len("hash_") + 12


def test_consumer_from_our_hook_wins() -> None:
    span = make_span(
        {"http.method": "GET", "peekapi.consumer_id": "hash_aaaaaaaaaaaa"},
    )
    assert span_to_event(span, identify_consumer=lambda h: "other")["consumer_id"] == (
        "hash_aaaaaaaaaaaa"
    )
    empty = make_span({"http.method": "GET", "peekapi.consumer_id": ""})
    assert span_to_event(empty)["consumer_id"] is None


def test_consumer_from_captured_headers_without_hooks() -> None:
    # The credential guard already hashed captured consumer headers: used as they are.
    guarded = make_span(
        {
            "http.method": "GET",
            "http.request.header.x_api_key": (sha("key"),),
            "http.request.header.authorization": (sha("Bearer t"),),
        }
    )
    assert span_to_event(guarded)["consumer_id"] == sha("key")
    # A raw value (no guard) is hashed, never passed through.
    raw = make_span({"http.method": "GET", "http.request.header.authorization": ("Bearer t",)})
    assert span_to_event(raw)["consumer_id"] == sha("Bearer t")
    custom = make_span({"http.method": "GET", "http.request.header.x_tenant": ("acme",)})
    assert span_to_event(custom, consumer_headers=("x-tenant",))["consumer_id"] == sha("acme")
    assert span_to_event(make_span({"http.method": "GET"}))["consumer_id"] is None


def test_identify_consumer_gets_captured_headers() -> None:
    seen: list[Mapping[str, str]] = []

    def identify(headers: Mapping[str, str]) -> str | None:
        seen.append(headers)
        return headers.get("x-tenant")

    span = make_span({"http.method": "GET", "http.request.header.x_tenant": ("acme",)})
    assert span_to_event(span, identify_consumer=identify)["consumer_id"] == "acme"
    assert seen == [{"x-tenant": "acme"}]
    nobody = make_span({"http.method": "GET"})
    assert span_to_event(nobody, identify_consumer=lambda h: None)["consumer_id"] is None
    long = span_to_event(nobody, identify_consumer=lambda h: "c" * 400)["consumer_id"]
    assert long == "c" * 256


def test_identify_consumer_that_raises_keeps_the_event_and_is_counted() -> None:
    from peekapi_otel import stats

    def identify(headers: Mapping[str, str]) -> str | None:
        raise KeyError("nope")

    event = span_to_event(make_span({"http.method": "GET"}), identify_consumer=identify)
    assert event["consumer_id"] is None
    assert event["method"] == "GET"
    dropped = stats()["dropped"]
    assert isinstance(dropped, dict)
    assert dropped["consumer_error"] == 1


# --- metadata and encoding ----------------------------------------------------------


def test_metadata_always_has_the_ids_and_the_static_values_are_copied() -> None:
    static = {"env": "prod"}
    event = span_to_event(make_span({"http.method": "GET"}), metadata=static)
    assert event["metadata"] == {
        "env": "prod",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": "00f067aa0ba902b7",
    }
    assert static == {"env": "prod"}


def test_the_line_is_compact_json_with_the_wire_fields_in_schema_order() -> None:
    data = EventEncoder().encode(record_of_span(make_span({"http.method": "GET"})))
    assert data is not None
    assert b", " not in data
    assert tuple(json.loads(data)) == FIELD_NAMES


def test_oversize_event_loses_its_metadata_then_is_dropped() -> None:
    record = record_of_span(make_span({"http.method": "GET"}))
    metadata = {"blob": "x" * 1000}
    full = EventEncoder(metadata=metadata).encode(record)
    assert full is not None
    slim = EventEncoder(metadata=metadata, max_event_bytes=len(full) - 1).encode(record)
    assert slim is not None
    assert json.loads(slim)["metadata"] is None
    assert EventEncoder(metadata=metadata, max_event_bytes=20).encode(record) is None


_ENCODER_CASES = [
    (
        {
            "http.method": "GET",
            "http.target": '/a/é"\\x?b=2&a=1',
            "http.status_code": 200,
            "http.route": "/a/{x}",
        },
        {},
    ),
    (
        {
            "http.request.method": "_OTHER",
            "http.request.method_original": "purge",
            "url.path": "/p",
            "url.query": "z=1&a=2",
            "http.response.status_code": 404,
            "peekapi.consumer_id": "hash_abc",
            "peekapi.request_size": 5,
            "peekapi.response_size": 7,
        },
        {"metadata": {"env": "prod", "n": 1.5}},
    ),
    (
        {
            "http.method": "POST",
            "http.url": "http://h/x/y?q=1",
            "http.request.header.x_api_key": ("hash_123456789012",),
        },
        {"collect_query_string": True},
    ),
    (
        {"http.method": "GET", "peekapi.path": "/wsgi", "peekapi.query": "b=1"},
        {"path_source": "raw", "collect_query_string": True},
    ),
    (  # over the limit: metadata dropped, as the slow path does
        {"http.method": "GET", "http.target": "/x" + "y" * 3000},
        {"metadata": {"big": "z" * 500}, "max_event_bytes": 3200},
    ),
    (  # too large even without metadata
        {"http.method": "GET", "http.target": "/x" + "y" * 2000},
        {"max_event_bytes": 1000},
    ),
    (  # the same two with a status code: the request path queues a record
        {"http.method": "GET", "http.target": "/x" + "y" * 3000, "http.status_code": 200},
        {"metadata": {"big": "z" * 500}, "max_event_bytes": 3200},
    ),
    (
        {"http.method": "GET", "url.path": "/x" + "y" * 2000, "http.response.status_code": 200},
        {"max_event_bytes": 1000},
    ),
    (  # a record with an id the fast path cannot write
        {
            "http.method": "GET",
            "url.path": "/q",
            "url.query": "b=1&a=2",
            "http.response.status_code": 200,
        },
        {"collect_query_string": True, "metadata": {"trace_id": "mine"}},
    ),
    ({"http.method": "GET", "http.target": "/x"}, {"metadata": {"trace_id": "mine"}}),
    (  # old-mode ASGI: target without query, the query only in the URL
        {
            "http.method": "get",
            "http.target": "/items/42",
            "http.url": "http://h/items/42?q=1",
            "http.status_code": 200,
            "peekapi.consumer_id": "hash_c2acc5de4672",
            "peekapi.request_size": 0,
            "peekapi.response_size": 17,
        },
        {},
    ),
    (  # route without a leading slash, raw path in url.path
        {
            "http.request.method": "GET",
            "url.path": "/items/42",
            "http.route": "items/{id}",
            "http.response.status_code": 201,
        },
        {},
    ),
    (  # empty route and empty url.path
        {"http.request.method": "GET", "url.path": "", "http.route": ""},
        {},
    ),
    (  # values of unusual types go through the shared helpers
        {
            "http.request.method": ("POST",),
            "url.path": ("/seq",),
            "http.route": ("/r/{x}",),
            "http.response.status_code": "503",
            "peekapi.request_size": -3,
            "http.request.header.content_length": "12",
            "peekapi.response_size": True,
            "http.response.header.content_length": ("9",),
            "peekapi.consumer_id": "",
        },
        {},
    ),
    (  # an empty standard method falls back to the old attribute
        {"http.request.method": "", "http.method": "put", "http.target": ["/list"]},
        {},
    ),
    (  # no hook ran: the consumer comes from captured headers
        {
            "http.method": "GET",
            "http.target": "/h?x=1",
            "http.status_code": False,
            "http.request.header.x_api_key": ("raw-secret",),
        },
        {"path_source": "raw"},
    ),
    (  # no path attribute at all: the span name
        {"http.method": "GET", "http.status_code": 204},
        {"consumer_headers": ("authorization",)},
    ),
    (  # a consumer longer than the limit is cut
        {"http.method": "GET", "http.target": "/c", "peekapi.consumer_id": "c" * 300},
        {},
    ),
]


def reference_line(record: Record, encoder: EventEncoder, limit: int = 65_536) -> bytes | None:
    """``json`` over the mapping's event, metadata dropped when over ``limit``."""
    event = event_of(record, encoder.rules)
    data = _JSON.encode(event).encode("utf-8", "surrogateescape")
    if len(data) > limit:
        data = _JSON.encode({**event, "metadata": None}).encode("utf-8", "surrogateescape")
    return data if len(data) <= limit else None


@pytest.mark.parametrize(("attrs", "opts"), _ENCODER_CASES)
@pytest.mark.parametrize("start", [1_700_000_000_000_000_000, 1_764_000_000_123_456_789])
def test_encoder_line_is_json_of_the_mapped_event(
    attrs: dict[str, Any], opts: dict[str, Any], start: int
) -> None:
    error = "http.status_code" not in attrs and "http.response.status_code" not in attrs
    span = sdk_span(attrs, start=start, end=start + 12_345_678, error=error)
    settings = dict(opts)
    limit = settings.pop("max_event_bytes", 65536)
    encoder = EventEncoder(max_event_bytes=limit, **settings)
    fast, public = _sdk.record_of(span), record_of_span(span)
    expected = reference_line(public, encoder, limit)
    assert encoder.encode(fast) == expected
    assert encoder.encode(public) == expected
    if expected is not None:
        assert event_problem(json.loads(expected)) is None


def test_one_encoder_over_many_requests_matches_the_reference() -> None:
    """The encoder caches the method/path/status part per route or raw path; the same
    route with other methods and statuses, raw paths, status-less spans with and without
    an error, non-standard methods, a route and a raw path with the same text, ties in
    the millisecond rounding and more routes than the cache holds all stay exact."""
    encoder = EventEncoder()
    cases: list[tuple[dict[str, Any], int, bool]] = []
    for status in (200, 404, 200, 500):
        for method in ("GET", "post", "GET"):
            route = {"http.method": method, "http.route": "/i/{id}", "http.status_code": status}
            cases += [(route, 0, False), (route, 0, True)]
    for error in (False, True, False, True):  # no status code: 500 on error, else 0
        cases.append(({"http.request.method": "GET", "http.route": "/i/{id}"}, 0, error))
        cases.append(({"http.request.method": "GET", "url.path": "/raw/1"}, 0, error))
    for original in ("PURGE", "MKCOL", "PURGE"):
        other = {"http.request.method": "_OTHER", "http.request.method_original": original}
        cases.append(({**other, "http.route": "/o", "http.response.status_code": 200}, 0, False))
        cases.append(({**other, "url.path": "/o", "http.response.status_code": 200}, 0, False))
    for method, status in (("GET", 201), ("GET", 201), ("put", 201), ("GET", 503)):
        for path_attrs in (
            {"url.path": "/raw/1"},
            {"http.target": "/raw/1?q=1"},
            {"http.target": "items"},
            {"http.route": "items"},  # the route gets its slash, the raw path not
            {"url.path": ("/seq",), "http.target": "/seq"},
        ):
            cases.append(
                (
                    {
                        "http.request.method": method,
                        "http.response.status_code": status,
                        **path_attrs,
                    },
                    0,
                    False,
                )
            )
    for duration in (125_000, 135_000, 5_000, 4_999, 0, -7, 1_234_567):
        cases.append(
            ({"http.method": "GET", "http.route": "/t", "http.status_code": 200}, duration, False)
        )
    for n in range(HEADS_MAX + 10):
        cases.append(
            ({"http.method": "GET", "http.route": f"/r{n}", "http.status_code": 200}, 0, False)
        )
    cases.append(
        ({"http.method": "GET", "http.route": "/i/{id}", "http.status_code": 200}, 0, False)
    )
    for attrs, duration, error in cases:
        span = sdk_span(attrs, end=START + (duration or 12_345_678), error=error)
        record = _sdk.record_of(span)
        assert encoder.encode(record) == reference_line(record, encoder), (attrs, error)


@pytest.mark.parametrize(
    ("duration", "expected"),
    [(125_000, 0.13), (124_999, 0.12), (5_000, 0.01), (4_999, 0.0), (-10, 0.0), (1_234_567, 1.23)],
)
def test_milliseconds_round_half_up_on_exact_nanoseconds(duration: int, expected: float) -> None:
    event = span_to_event(make_span({"http.method": "GET"}, end=START + duration))
    assert event["response_time_ms"] == expected


def test_millisecond_text_is_the_float_repr() -> None:
    """The encoder writes ``response_time_ms`` from integers; it must read exactly as
    ``repr(millis(ns))`` (what ``json`` writes for the mapped event)."""
    import random

    rng = random.Random(7)
    durations = [
        *range(-10, 200_000, 7),
        *(10**k + d for k in range(3, 23) for d in (-5_001, -5_000, -1, 0, 1, 4_999, 5_000)),
    ]
    durations += [rng.randrange(0, 10**13) for _ in range(20_000)]
    durations += [rng.randrange(0, 10**22) for _ in range(20_000)]
    writer = TimesWriter()
    for ns in durations:
        assert writer.texts(START, START + ns)[0] == repr(millis(ns)), ns


def test_encoder_writes_the_duration_as_the_reference() -> None:
    """The same text as the mapped event over rounding boundaries, negative, huge and
    random durations."""
    import random

    rng = random.Random(11)
    durations = [-7, 0, 1, 4_999, 5_000, 14_999, 15_000, 994_999, 995_000, 10**17 + 5_000]
    durations += [10**k + d for k in range(3, 24) for d in (-5_001, -5_000, 4_999, 5_000)]
    durations += [rng.randrange(0, 10**12) for _ in range(2_000)]
    encoder = EventEncoder()
    for ns in durations:
        record = Record(dict(NEW), TRACE_ID, SPAN_ID, START, START + ns, StatusCode.UNSET)
        assert encoder.encode(record) == reference_line(record, encoder), ns


@pytest.mark.parametrize("micros", [0, 1, 9, 10, 999, 1_000, 1_001, 100_000, 999_999])
def test_timestamp_fraction_matches_isoformat(micros: int) -> None:
    start = 1_764_000_000_000_000_000 + micros * 1_000 + 999  # sub-microsecond part ignored
    record = Record(dict(NEW), TRACE_ID, SPAN_ID, start, start + 1, StatusCode.UNSET)
    line = EventEncoder().encode(record)
    assert line is not None
    expected = datetime.datetime.fromtimestamp(start // 1_000 / 1e6, datetime.timezone.utc)
    assert json.loads(line)["timestamp"] == expected.isoformat()


# --- span reads: the SDK fields and the public fallback -----------------------------


def test_the_sdk_span_fields_are_read_on_this_sdk() -> None:
    """The probe at import recognised the SDK's span class, so the fast reads run."""
    assert type(sdk_span(NEW)) in _sdk.FAST_SPANS


def test_the_span_a_processor_receives_is_read_from_its_fields() -> None:
    """``on_end`` gets a ``ReadableSpan`` copy, not the live span: the fast reads must
    know that class too, or every request goes through the public properties."""
    ended: list[ReadableSpan] = []

    class Keep(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            ended.append(span)

    provider = TracerProvider()
    provider.add_span_processor(Keep())
    span = provider.get_tracer("events").start_span(
        "GET /x", kind=SpanKind.SERVER, attributes=NEW, start_time=START
    )
    span.end(end_time=END)
    (received,) = ended
    assert type(received) in _sdk.FAST_SPANS
    attributes = _sdk._field_attributes(received)
    assert attributes is not None
    assert attributes == dict(received.attributes or {})
    fast, public = _sdk.record_of(received), record_of_span(received)
    assert fast.attributes is attributes  # the dict itself, not a read-only copy
    assert fast._replace(attributes=dict(fast.attributes)) == public._replace(
        attributes=dict(public.attributes)
    )
    assert _sdk.is_request_span(received) is True


@pytest.mark.parametrize(
    "attrs",
    [
        NEW,
        OLD,
        {"http.method": "GET", "http.target": "/x"},
        {"http.method": "GET", "http.status_code": 200},  # the span name gives the path
        {"http.method": "GET", "http.url": "http://h/x?q=1"},
    ],
)
@pytest.mark.parametrize("error", [False, True])
def test_fast_and_public_span_reads_give_the_same_record(
    attrs: dict[str, Any], error: bool
) -> None:
    span = sdk_span(attrs, name="GET /named", error=error)
    fast, public = _sdk.record_of(span), record_of_span(span)
    assert fast._replace(attributes=dict(fast.attributes)) == public._replace(
        attributes=dict(public.attributes)
    )
    assert fast.status_code is (StatusCode.ERROR if error else StatusCode.UNSET)
    assert (fast.trace_id, fast.span_id) == (
        span.context.trace_id,  # type: ignore[union-attr]
        span.context.span_id,  # type: ignore[union-attr]
    )
    assert (fast.start_ns, fast.end_ns) == (START, END)


def test_spans_of_another_class_use_the_public_reads() -> None:
    """A span built by hand (or by another SDK) is not the probed class: the public
    API gives its record and decides whether it is a request."""
    span = make_span(NEW, status=Status(StatusCode.ERROR))
    assert _sdk._field_attributes(span) is None  # a plain dict, not the SDK's container
    assert _sdk.record_of(span) == record_of_span(span)
    assert _sdk.record_of(span).status_code is StatusCode.ERROR
    assert _sdk.is_request_span(span) is True
    assert _sdk.is_request_span(make_span({"url.path": "/ws"})) is False


@pytest.mark.parametrize(
    ("attributes", "kind", "remote", "expected"),
    [
        ({"http.method": "GET"}, SpanKind.SERVER, None, True),
        ({"http.request.method": "GET"}, SpanKind.SERVER, True, True),
        ({"http.request.method": "GET"}, SpanKind.SERVER, False, False),
        ({"http.request.method": "GET"}, SpanKind.CLIENT, None, False),
        ({"url.path": "/ws"}, SpanKind.SERVER, None, False),
    ],
)
def test_fast_is_request_span_matches_the_public_one(
    attributes: dict[str, Any], kind: SpanKind, remote: bool | None, expected: bool
) -> None:
    from opentelemetry import trace

    tracer = TracerProvider().get_tracer("request")
    context = None
    if remote is not None:
        parent = SpanContext(TRACE_ID, 0x1111, is_remote=remote, trace_flags=TraceFlags(1))
        context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
    span = tracer.start_span("GET", context=context, kind=kind, attributes=attributes)
    span.end()
    assert type(span) in _sdk.FAST_SPANS
    assert _sdk.is_request_span(span) is expected  # type: ignore[arg-type]
    assert is_request_span(span) is expected  # type: ignore[arg-type]


def test_without_a_probed_span_class_every_read_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """What an SDK whose span layout differs gets: the probe found nothing, so the SDK's
    own spans go through the public API, with the same records and decisions."""
    span = sdk_span(NEW, error=True)
    fast = _sdk.record_of(span)
    monkeypatch.setattr(_sdk, "FAST_SPANS", frozenset())
    public = _sdk.record_of(span)
    assert public.attributes is not fast.attributes  # the read-only view, not the dict
    assert dict(public.attributes) == dict(fast.attributes)
    assert public[1:] == fast[1:]
    assert _sdk.is_request_span(span) is True
    assert EventEncoder().encode(public) == EventEncoder().encode(fast)
