"""Issue cases 2, 3 and 5: PeekAPI next to ``opentelemetry-distro`` and the OTLP/HTTP
exporter, sending traces to a loopback OTLP receiver.

The venv holds ``peekapi-otel[fastapi,flask,django]``, uvicorn, gunicorn,
``opentelemetry-exporter-otlp-proto-http`` and ``opentelemetry-distro`` (no pins; pip
resolves them to 0.66b1/1.45.1 at the time of writing).
"""

from __future__ import annotations

import secrets
import time

import pytest

from ingest import Ingest
from zerocode.checks import assert_no_secret, check_events, count_lines
from zerocode.support import (
    API_KEY_SECRET,
    TOKEN_SECRET,
    MakeServer,
    OtlpReceiver,
    Venv,
    consumer_hash,
    log,
    request,
    standard_traffic,
    unique_events,
)

pytestmark = pytest.mark.slow

OURS = {"OTEL_PYTHON_DISTRO": "peekapi", "OTEL_PYTHON_CONFIGURATOR": "peekapi"}
THEIRS = {"OTEL_PYTHON_DISTRO": "distro", "OTEL_PYTHON_CONFIGURATOR": "configurator"}
CAPTURE = {
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "authorization,x-api-key,cookie"
}
FAST = {"PEEKAPI_FLUSH_INTERVAL": "0.5", "OTEL_BSP_SCHEDULE_DELAY": "300"}


def otlp_env(receiver: OtlpReceiver, exporters: str = "otlp") -> dict[str, str]:
    return {
        "OTEL_TRACES_EXPORTER": exporters,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        **CAPTURE,
        **FAST,
    }


def settle(ingest: Ingest, count: int, timeout: float = 10.0) -> list[dict[str, object]]:
    """Wait for ``count`` events, then a little longer so doubles would show up."""
    ingest.wait_for(count, timeout)
    time.sleep(1.2)
    return ingest.wait_for(count, 0)


# --- case 2 ---------------------------------------------------------------------------


def test_selecting_our_distro_and_configurator(
    otlp_venv: Venv, make_server: MakeServer, ingest: Ingest, otlp: OtlpReceiver
) -> None:
    """(a) ``OTEL_PYTHON_DISTRO=peekapi OTEL_PYTHON_CONFIGURATOR=peekapi`` with
    opentelemetry-distro installed: events arrive; the other distro's ``otlp`` defaults
    do not apply (no gRPC exporter is installed: they would fail the whole start-up)."""
    server = make_server(
        otlp_venv, "fastapi-uvicorn", PEEKAPI_ENDPOINT=ingest.url, **OURS, **FAST
    ).start()
    sent = standard_traffic(server.port)
    events = settle(ingest, len(sent))
    server.stop()
    server.assert_clean_output()
    check_events(events, sent, "fastapi")
    assert otlp.paths == [], "our distro must not default any exporter to otlp"


@pytest.mark.parametrize("mode", ["fastapi-uvicorn", "flask-gunicorn-w2", "django-gunicorn"])
def test_other_distro_and_configurator_selected(
    otlp_venv: Venv, make_server: MakeServer, ingest: Ingest, otlp: OtlpReceiver, mode: str
) -> None:
    """(b) opentelemetry-distro and its configurator win; the pre-instrument hook
    attaches our processor once. OTLP traces and PeekAPI events both arrive, the events
    carry consumers and sizes (our hooks were chained into the instrumentors), and the
    OTLP spans hold no raw credential even though header capture is on."""
    framework = mode.split("-")[0]
    server = make_server(
        otlp_venv, mode, PEEKAPI_ENDPOINT=ingest.url, **THEIRS, **otlp_env(otlp)
    ).start()
    sent = standard_traffic(server.port)
    events = settle(ingest, len(sent))
    spans = otlp.wait_for_server_spans(len(sent), timeout=10)
    server.stop()
    server.assert_clean_output()
    check_events(events, sent, framework)
    assert {(s.trace_id, s.span_id) for s in spans} == set(unique_events(events)), (
        "the OTLP server spans and the PeekAPI events must be the same requests"
    )
    raw = otlp.raw()
    assert_no_secret(raw, "the OTLP export")
    captured = {
        k: v for s in spans for k, v in s.attributes.items() if k.startswith("http.request.header")
    }
    log(f"{mode}: captured header attributes in OTLP: {captured}")
    assert captured.get("http.request.header.x_api_key") == [consumer_hash(API_KEY_SECRET)]
    assert captured.get("http.request.header.authorization") == [consumer_hash(TOKEN_SECRET)]
    assert captured.get("http.request.header.cookie") == ["[REDACTED]"]


@pytest.mark.parametrize(
    ("selection", "mode"),
    [("theirs", "fastapi-uvicorn"), ("ours", "django-runserver"), ("theirs", "flask-devserver")],
)
def test_otlp_and_peekapi_exporters_no_double_events(
    otlp_venv: Venv,
    make_server: MakeServer,
    ingest: Ingest,
    otlp: OtlpReceiver,
    selection: str,
    mode: str,
) -> None:
    """(c) ``OTEL_TRACES_EXPORTER=otlp,peekapi``: the exporter stays quiet because the
    processor (which sees every request) is attached: one event per request."""
    framework = mode.split("-")[0]
    chosen = THEIRS if selection == "theirs" else OURS
    server = make_server(
        otlp_venv, mode, PEEKAPI_ENDPOINT=ingest.url, **chosen, **otlp_env(otlp, "otlp,peekapi")
    ).start()
    sent = standard_traffic(server.port)
    events = settle(ingest, len(sent))
    spans = otlp.wait_for_server_spans(len(sent), timeout=10)
    server.stop()
    events = ingest.wait_for(len(sent), 0)
    server.assert_clean_output()
    check_events(events, sent, framework)
    assert len(spans) == len(sent)
    assert_no_secret(otlp.raw(), "the OTLP export")


def test_peekapi_as_the_only_traces_exporter(
    user_venv: Venv, make_server: MakeServer, ingest: Ingest
) -> None:
    """``OTEL_TRACES_EXPORTER=peekapi`` (SPEC 7) in the plain user venv: the exporter
    behind the batch processor stays quiet next to the processor: one event each."""
    server = make_server(
        user_venv,
        "flask-gunicorn-w2",
        PEEKAPI_ENDPOINT=ingest.url,
        OTEL_TRACES_EXPORTER="peekapi",
        **FAST,
    ).start()
    sent = standard_traffic(server.port)
    events = settle(ingest, len(sent))
    server.stop()
    server.assert_clean_output()
    check_events(events, sent, "flask")


# --- case 3 ---------------------------------------------------------------------------


def _traceparent(sampled: bool) -> tuple[str, str]:
    # The low 64 bits all set: TraceIdRatioBased(0.01) never samples this trace ID.
    trace_id = secrets.token_hex(8) + "f" * 16
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-{'01' if sampled else '00'}"


def _sampling_traffic(port: int, roots: int) -> tuple[list[str], list[str]]:
    """``roots`` plain requests, then 5 with an unsampled and 5 with a sampled parent."""
    for i in range(roots):
        status, _ = request(port, "GET", f"/items/{1 if i % 2 else 999}")
        assert status in (200, 404)
    unsampled, sampled = [], []
    for flag, ids in ((False, unsampled), (True, sampled)):
        for _ in range(5):
            trace_id, header = _traceparent(flag)
            status, _ = request(port, "GET", "/items/1", headers={"traceparent": header})
            assert status == 200
            ids.append(trace_id)
    return unsampled, sampled


@pytest.mark.parametrize(
    ("selection", "mode", "sampler"),
    [
        ("ours", "fastapi-uvicorn", "traceidratio"),
        ("theirs", "django-gunicorn", "parentbased_traceidratio"),
    ],
)
def test_sampling_never_hides_requests(
    otlp_venv: Venv,
    make_server: MakeServer,
    ingest: Ingest,
    otlp: OtlpReceiver,
    selection: str,
    mode: str,
    sampler: str,
) -> None:
    """A 1 % sampler: PeekAPI counts every request, OTLP gets about 1 % of them."""
    roots = 200
    chosen = THEIRS if selection == "theirs" else OURS
    server = make_server(
        otlp_venv,
        mode,
        PEEKAPI_ENDPOINT=ingest.url,
        OTEL_TRACES_SAMPLER=sampler,
        OTEL_TRACES_SAMPLER_ARG="0.01",
        **chosen,
        **otlp_env(otlp),
    ).start()
    started = time.monotonic()
    unsampled, sampled = _sampling_traffic(server.port, roots)
    log(f"{mode}: {roots + 10} requests in {time.monotonic() - started:.1f}s")
    total = roots + len(unsampled) + len(sampled)
    events = settle(ingest, total, timeout=20)
    time.sleep(1.0)  # the OTLP batch processor flushes every 300 ms
    server.stop()
    server.assert_clean_output()
    spans = otlp.server_spans()
    log(f"{mode}/{sampler}: PeekAPI {len(events)} events, OTLP {len(spans)} server spans")
    assert len(unique_events(events)) == len(events) == total
    event_traces = {e["metadata"]["trace_id"] for e in events}
    assert set(unsampled) <= event_traces, "a request with an unsampled parent was not counted"
    span_traces = {s.trace_id for s in spans}
    assert not set(unsampled) & span_traces, "an unsampled parent's request reached OTLP"
    if sampler.startswith("parentbased"):
        assert set(sampled) <= span_traces, "a sampled parent's request is missing in OTLP"
        assert len(spans) <= 15 + len(sampled)
    else:
        assert len(spans) <= 15


def test_record_all_false_restores_plain_sampling(
    otlp_venv: Venv, make_server: MakeServer, ingest: Ingest, otlp: OtlpReceiver
) -> None:
    server = make_server(
        otlp_venv,
        "fastapi-uvicorn",
        PEEKAPI_ENDPOINT=ingest.url,
        PEEKAPI_RECORD_ALL="false",
        OTEL_TRACES_SAMPLER="traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0.01",
        **OURS,
        **otlp_env(otlp),
    ).start()
    unsampled, _ = _sampling_traffic(server.port, 200)
    time.sleep(2.0)
    server.stop()
    events = ingest.wait_for(1000, timeout=0)
    server.assert_clean_output()
    spans = otlp.server_spans()
    log(f"record_all=false: PeekAPI {len(events)} events, OTLP {len(spans)} server spans")
    assert len(events) <= 15
    assert set(unique_events(events)) == {(s.trace_id, s.span_id) for s in spans}, (
        "with record_all off PeekAPI sees exactly the sampled requests"
    )
    assert not {e["metadata"]["trace_id"] for e in events} & set(unsampled)


# --- case 5 ---------------------------------------------------------------------------

BAD_CONFIGS = {
    "no-key": ({"PEEKAPI_API_KEY": None}, "no API key"),
    "refused-endpoint": ({"PEEKAPI_ENDPOINT": "http://10.0.0.1/v1/events"}, "is refused"),
}


@pytest.mark.parametrize("selection", ["ours", "theirs"])
@pytest.mark.parametrize("bad", sorted(BAD_CONFIGS))
def test_bad_peekapi_config_keeps_app_and_other_exporters(
    otlp_venv: Venv,
    make_server: MakeServer,
    ingest: Ingest,
    otlp: OtlpReceiver,
    selection: str,
    bad: str,
) -> None:
    """No key, or a refused endpoint (never contacted): the app serves, OTLP spans still
    arrive, and the log says once what is wrong."""
    env, message = BAD_CONFIGS[bad]
    chosen = THEIRS if selection == "theirs" else OURS
    settings: dict[str, str | None] = {
        "PEEKAPI_ENDPOINT": ingest.url,
        **chosen,
        **otlp_env(otlp),
        **env,
    }
    server = make_server(otlp_venv, "fastapi-uvicorn", **settings).start()
    sent = standard_traffic(server.port)
    assert [s.status for s in sent] == [200, 201, 404, 200]
    spans = otlp.wait_for_server_spans(len(sent), timeout=10)
    server.stop()
    output = server.assert_clean_output()
    assert len(spans) == len(sent), f"OTLP got {len(spans)} server spans\n{output}"
    assert ingest.requests == []
    assert count_lines(output, message) == 1, f"expected {message!r} once:\n{output}"


def test_missing_user_exporter_does_not_stop_peekapi(
    user_venv: Venv, make_server: MakeServer, ingest: Ingest
) -> None:
    """``OTEL_TRACES_EXPORTER=otlp`` without an OTLP exporter installed: upstream this
    switches off all instrumentation. Our configurator says so in one line and the app
    is still instrumented for PeekAPI."""
    server = make_server(
        user_venv,
        "fastapi-uvicorn",
        PEEKAPI_ENDPOINT=ingest.url,
        OTEL_TRACES_EXPORTER="otlp",
        **FAST,
    ).start()
    sent = standard_traffic(server.port)
    events = settle(ingest, len(sent))
    server.stop()
    output = server.assert_clean_output()
    check_events(events, sent, "fastapi")
    assert count_lines(output, "the OpenTelemetry SDK set-up failed") == 1, output
