"""Issue cases 4 and 7: excluded URLs, and the programmatic path's sampling completeness
and credential protection."""

from __future__ import annotations

import time

import pytest

from ingest import Ingest
from zerocode.checks import assert_no_secret, check_events
from zerocode.support import (
    API_KEY_SECRET,
    COOKIE_SECRET,
    TOKEN_SECRET,
    MakeServer,
    Venv,
    consumer_hash,
    log,
    request,
    standard_traffic,
    unique_events,
)

pytestmark = pytest.mark.slow

FAST = {"PEEKAPI_FLUSH_INTERVAL": "0.5"}

# --- case 4 ---------------------------------------------------------------------------

EXCLUSIONS = {
    # The per-framework variable replaces the generic one (OTEL-FACTS Q9): "items" in
    # the generic variable must have no effect here.
    "fastapi-uvicorn": {
        "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": "health",
        "OTEL_PYTHON_EXCLUDED_URLS": "items",
    },
    "flask-devserver": {"OTEL_PYTHON_EXCLUDED_URLS": "health"},
    "django-runserver": {"OTEL_PYTHON_DJANGO_EXCLUDED_URLS": "/health"},
    "flask-gunicorn-w2": {"OTEL_PYTHON_FLASK_EXCLUDED_URLS": "health"},
}


@pytest.mark.parametrize("mode", sorted(EXCLUSIONS))
def test_excluded_urls_make_no_event(
    user_venv: Venv, make_server: MakeServer, ingest: Ingest, mode: str
) -> None:
    framework = mode.split("-")[0]
    server = make_server(
        user_venv, mode, PEEKAPI_ENDPOINT=ingest.url, **FAST, **EXCLUSIONS[mode]
    ).start()
    sent = standard_traffic(server.port)
    assert (sent[-1].path, sent[-1].status) == ("/health", 200)
    kept = sent[:-1]
    events = ingest.wait_for(len(kept), timeout=10)
    time.sleep(1.2)  # an event for /health would have arrived by now
    server.stop()
    events = ingest.wait_for(len(kept), timeout=0)
    server.assert_clean_output()
    assert not [e for e in events if e["path"] == "/health"]
    check_events(events, kept, framework)


def test_excluded_urls_programmatic(
    user_venv: Venv, make_server: MakeServer, ingest: Ingest
) -> None:
    server = make_server(
        user_venv,
        "fastapi-uvicorn",
        zero_code=False,
        PEEKAPI_PROGRAMMATIC="1",
        PEEKAPI_ENDPOINT=ingest.url,
        OTEL_PYTHON_EXCLUDED_URLS="health",
        **FAST,
    ).start()
    sent = standard_traffic(server.port)
    ingest.wait_for(len(sent) - 1, timeout=10)
    time.sleep(1.2)
    server.stop()
    server.assert_clean_output()
    check_events(ingest.wait_for(0, 0), sent[:-1], "fastapi")


# --- case 7 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "sampler"),
    [
        (
            "fastapi-uvicorn",
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"},
        ),
        ("flask-devserver", {"OTEL_TRACES_SAMPLER": "always_off"}),
        (
            "django-runserver",
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"},
        ),
    ],
)
def test_programmatic_counts_requests_the_env_sampler_drops(
    user_venv: Venv, make_server: MakeServer, ingest: Ingest, mode: str, sampler: dict[str, str]
) -> None:
    framework = mode.split("-")[0]
    server = make_server(
        user_venv,
        mode,
        zero_code=False,
        PEEKAPI_PROGRAMMATIC="1",
        PEEKAPI_ENDPOINT=ingest.url,
        **FAST,
        **sampler,
    ).start()
    sent = standard_traffic(server.port) + standard_traffic(server.port)
    events = ingest.wait_for(len(sent), timeout=10)
    server.stop()
    server.assert_clean_output()
    check_events(ingest.wait_for(len(sent), 0) or events, sent, framework)


def test_programmatic_with_own_provider_sampler_and_second_exporter(
    user_venv: Venv, make_server: MakeServer, ingest: Ingest
) -> None:
    """The app built its own TracerProvider (ratio 0 for new traces) with a console
    exporter, then called ``configure()``: every request is counted, and the console
    exporter (fed by sampled-parent requests with header capture on) sees no raw
    credential."""
    server = make_server(
        user_venv,
        "custom-provider-uvicorn",
        zero_code=False,
        PEEKAPI_ENDPOINT=ingest.url,
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST="authorization,x-api-key,cookie",
        **FAST,
    ).start()
    for i in range(10):
        assert request(server.port, "GET", f"/items/{i}")[0] == 200
    for n, headers in enumerate(
        ({"x-api-key": API_KEY_SECRET, "cookie": COOKIE_SECRET}, {"authorization": TOKEN_SECRET}),
        start=1,
    ):
        # A sampled remote parent: this request's span reaches the console exporter.
        headers["traceparent"] = f"00-{n:032x}-00f067aa0ba902b7-01"
        assert request(server.port, "GET", "/items/7", headers=headers)[0] == 200
    events = ingest.wait_for(12, timeout=10)
    server.stop()
    output = server.assert_clean_output()
    assert len(unique_events(events)) == len(events) == 12, events
    consumers = sorted(e["consumer_id"] for e in events if e["consumer_id"])
    assert consumers == sorted([consumer_hash(API_KEY_SECRET), consumer_hash(TOKEN_SECRET)])
    assert_no_secret(output, "the console exporter's output")
    assert output.count('"kind": "SpanKind.SERVER"') == 2, output
    assert consumer_hash(API_KEY_SECRET) in output, output
    assert "[REDACTED]" in output, output
    log("custom provider: 12 events; console exporter got 2 server spans, no secret")
