"""Span to event mapping, unit level: every field, every fallback, all semconv key sets."""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pytest
from opentelemetry.sdk.trace import Event as SpanEvent
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from peekapi_otel.core._events import (
    encode_event,
    hash_consumer,
    is_request_span,
    record,
    span_to_event,
)

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
    events: tuple[SpanEvent, ...] = (),
    start: int | None = START,
    end: int | None = END,
) -> ReadableSpan:
    context = SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(1))
    return ReadableSpan(
        name=name,
        context=context,
        parent=parent,
        attributes=dict(attributes or {}),
        events=events,
        kind=kind,
        status=status or Status(StatusCode.UNSET),
        start_time=start,
        end_time=end,
    )


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


def test_exception_event_without_status_code_is_500() -> None:
    exception = SpanEvent("exception", {"exception.type": "RuntimeError"})
    span = make_span({"http.method": "GET"}, events=(exception,))
    assert span_to_event(span)["status_code"] == 500


def test_recorded_status_wins_over_error() -> None:
    span = make_span(
        {"http.method": "GET", "http.status_code": 503}, status=Status(StatusCode.ERROR)
    )
    assert span_to_event(span)["status_code"] == 503


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


def test_encode_event_is_compact_json() -> None:
    event = span_to_event(make_span({"http.method": "GET"}))
    data = encode_event(event, 65_536)
    assert data is not None
    assert json.loads(data) == event
    assert b", " not in data


def test_oversize_event_loses_its_metadata_then_is_dropped() -> None:
    event = span_to_event(make_span({"http.method": "GET"}), metadata={"blob": "x" * 1000})
    full = encode_event(event, 65_536)
    assert full is not None
    slim = encode_event(event, len(full) - 1)
    assert slim is not None
    assert json.loads(slim)["metadata"] is None
    assert encode_event(event, 20) is None


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


@pytest.mark.parametrize(("attrs", "opts"), _ENCODER_CASES)
@pytest.mark.parametrize("start", [1_700_000_000_000_000_000, 1_764_000_000_123_456_789])
def test_fast_encoder_matches_the_reference_encoding(
    attrs: dict[str, Any], opts: dict[str, Any], start: int
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Status

    from peekapi_otel.core._events import EventEncoder

    tracer = TracerProvider().get_tracer("encoder")
    span = tracer.start_span("GET /x", kind=SpanKind.SERVER, attributes=attrs, start_time=start)
    if "http.status_code" not in attrs and "http.response.status_code" not in attrs:
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=start + 12_345_678)
    settings = dict(opts)
    limit = settings.pop("max_event_bytes", 65536)
    expected = encode_event(span_to_event(span, **settings), limit)  # type: ignore[arg-type]
    encoder = EventEncoder(max_event_bytes=limit, **settings)  # type: ignore[arg-type]
    assert encoder.encode(span) == expected
    # The record the request path queues instead of the span encodes the same.
    fields = record(span)
    if fields is not None:
        assert encoder.encode_record(fields) == expected


def test_one_encoder_over_many_requests_matches_the_reference() -> None:
    """The encoder caches the method/path/status part per route or raw path; the same
    route with other methods and statuses, raw paths, status-less spans with and without
    an error, non-standard methods, a route and a raw path with the same text, ties in
    the millisecond rounding and more routes than the cache holds all stay exact."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Status

    from peekapi_otel.core._events import _HEADS_MAX, EventEncoder

    tracer = TracerProvider().get_tracer("encoder")
    encoder = EventEncoder()
    records = EventEncoder()  # its own head cache, filled from records only
    cases: list[tuple[dict[str, Any], int, bool]] = []
    for status in (200, 404, 200, 500):
        for method in ("GET", "post", "GET"):
            cases.append(
                (
                    {"http.method": method, "http.route": "/i/{id}", "http.status_code": status},
                    0,
                    False,
                )
            )
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
    for n in range(_HEADS_MAX + 10):
        cases.append(
            ({"http.method": "GET", "http.route": f"/r{n}", "http.status_code": 200}, 0, False)
        )
    cases.append(
        ({"http.method": "GET", "http.route": "/i/{id}", "http.status_code": 200}, 0, False)
    )
    for attrs, duration, error in cases:
        span = tracer.start_span("GET /x", kind=SpanKind.SERVER, attributes=attrs, start_time=START)
        if error:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=START + (duration or 12_345_678))
        expected = encode_event(span_to_event(span), 65536)
        assert encoder.encode(span) == expected, (attrs, error)
        fields = record(span)
        if fields is not None:
            assert records.encode_record(fields) == expected, (attrs, error)


@pytest.mark.parametrize(
    ("duration", "expected"),
    [(125_000, 0.13), (124_999, 0.12), (5_000, 0.01), (4_999, 0.0), (-10, 0.0), (1_234_567, 1.23)],
)
def test_milliseconds_round_half_up_on_exact_nanoseconds(duration: int, expected: float) -> None:
    event = span_to_event(make_span({"http.method": "GET"}, end=START + duration))
    assert event["response_time_ms"] == expected


def test_millisecond_text_is_the_float_repr() -> None:
    """The encoder writes ``response_time_ms`` from integers; it must read exactly as
    ``repr(millis(ns))`` (what ``json`` writes for the reference event)."""
    import random

    from peekapi_otel.core._events import _millis_text, millis

    rng = random.Random(7)
    durations = [
        *range(-10, 200_000, 7),
        *(10**k + d for k in range(3, 23) for d in (-5_001, -5_000, -1, 0, 1, 4_999, 5_000)),
    ]
    durations += [rng.randrange(0, 10**13) for _ in range(20_000)]
    durations += [rng.randrange(0, 10**22) for _ in range(20_000)]
    for ns in durations:
        assert _millis_text(ns) == repr(millis(ns)), ns


def test_encoder_writes_the_duration_as_the_reference() -> None:
    """The encoder writes ``response_time_ms`` inline (as ``_millis_text``): the same
    text as the reference event over rounding boundaries, negative, huge and random
    durations."""
    import random

    from opentelemetry.sdk.trace import TracerProvider

    from peekapi_otel.core._events import EventEncoder

    span = (
        TracerProvider()
        .get_tracer("t")
        .start_span("GET", kind=SpanKind.SERVER, attributes=dict(NEW), start_time=START)
    )
    span.end(end_time=START + 1)
    fields = record(span)  # type: ignore[arg-type]
    assert fields is not None
    attrs, ctx, start, _ = fields
    rng = random.Random(11)
    durations = [-7, 0, 1, 4_999, 5_000, 14_999, 15_000, 994_999, 995_000, 10**17 + 5_000]
    durations += [10**k + d for k in range(3, 24) for d in (-5_001, -5_000, 4_999, 5_000)]
    durations += [rng.randrange(0, 10**12) for _ in range(2_000)]
    encoder = EventEncoder()
    for ns in durations:
        stand_in = ReadableSpan(
            name="GET",
            context=ctx,
            attributes=attrs,
            kind=SpanKind.SERVER,
            start_time=start,
            end_time=start + ns,
        )
        expected = encode_event(span_to_event(stand_in), 65536)
        assert encoder.encode_record((attrs, ctx, start, start + ns)) == expected, ns


@pytest.mark.parametrize("micros", [0, 1, 9, 10, 999, 1_000, 1_001, 100_000, 999_999])
def test_timestamp_fraction_matches_isoformat(micros: int) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from peekapi_otel.core._events import EventEncoder

    start = 1_764_000_000_000_000_000 + micros * 1_000 + 999  # sub-microsecond part ignored
    span = (
        TracerProvider()
        .get_tracer("t")
        .start_span("GET", kind=SpanKind.SERVER, attributes=dict(NEW), start_time=start)
    )
    span.end(end_time=start + 1)
    assert EventEncoder().encode(span) == encode_event(span_to_event(span), 65536)


def test_record_only_when_the_attributes_decide_the_event() -> None:
    """A record leaves the span behind, so it is made only when the event needs nothing
    but the attributes: an int status code and a raw path attribute."""
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("record")

    def ended(attrs: dict[str, Any]) -> ReadableSpan:
        span = tracer.start_span("GET /x", kind=SpanKind.SERVER, attributes=attrs)
        span.end()
        return span  # type: ignore[return-value]

    assert record(ended({**NEW})) is not None
    assert record(ended({**OLD})) is not None
    assert record(ended({"http.method": "GET", "http.target": "/x"})) is None  # no status
    assert (
        record(ended({"http.method": "GET", "http.status_code": True, "http.target": "/x"})) is None
    )
    assert record(ended({"http.method": "GET", "http.status_code": 200})) is None  # name only
    assert (
        record(ended({"http.method": "GET", "http.status_code": 200, "http.url": "http://h/x"}))
        is None
    )
    # Not the SDK's attribute container (a span built by hand): encoded at once instead.
    assert record(make_span(NEW)) is None
