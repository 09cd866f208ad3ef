"""Every further framework under ``opentelemetry-instrument`` with a real server, in a
virtual environment holding ``peekapi-otel[litestar,bottle,falcon,pyramid,aiohttp,
tornado,quart]`` plus uvicorn and gunicorn, against a real loopback ingest.

The examples use no PeekAPI code where the framework's instrumentation is auto-loaded
(Falcon WSGI, Pyramid, aiohttp, Tornado) and one documented line elsewhere (Litestar's
plugin, Bottle's and Quart's middleware, ``instrument_falcon_asgi``). Each server gets
the standard traffic (an API-key GET of a route with a parameter, a bearer POST with a
body, a 404 from the handler, a health check) and then SIGTERM; every request must
arrive exactly once with its route template, status, sizes and hashed consumer, and no
raw credential anywhere in the events.
"""

from __future__ import annotations

import json

import pytest

from ingest import Ingest
from zerocode.checks import assert_no_secret, check_events
from zerocode.support import MakeServer, Venv, log, standard_traffic

pytestmark = pytest.mark.slow

MODES = [
    "litestar-uvicorn",
    "bottle-gunicorn",
    "falcon-gunicorn",
    "falcon_asgi-uvicorn",
    "pyramid-gunicorn",
    "aiohttp-own-server",
    "tornado-own-server",
    "quart-uvicorn",
]


@pytest.mark.parametrize("mode", MODES)
def test_framework_zero_code(
    framework_venv: Venv, make_server: MakeServer, ingest: Ingest, mode: str
) -> None:
    framework = mode.split("-")[0]
    server = make_server(
        framework_venv, mode, PEEKAPI_ENDPOINT=ingest.url, PEEKAPI_FLUSH_INTERVAL="0.5"
    ).start()
    sent = standard_traffic(server.port)
    events = ingest.wait_for(len(sent), timeout=15)
    rc = server.stop()
    events = ingest.wait_for(len(sent), timeout=5)
    log(f"{mode}: {len(events)}/{len(sent)} events, exit code {rc}")
    output = server.assert_clean_output()
    check_events(events, sent, framework)
    assert_no_secret(json.dumps(list(events)), "events")
    assert_no_secret(output, "server output")


PROGRAMMATIC = [
    "litestar-uvicorn",
    "falcon-gunicorn",
    "pyramid-gunicorn",
    "aiohttp-own-server",
    "tornado-own-server",
]


@pytest.mark.parametrize("mode", PROGRAMMATIC)
def test_framework_programmatic(
    framework_venv: Venv, make_server: MakeServer, ingest: Ingest, mode: str
) -> None:
    """``PEEKAPI_PROGRAMMATIC=1 <server>`` without opentelemetry-instrument: the calls each
    example's README documents (Bottle, Quart and Falcon ASGI use the same line as
    above, so they are not repeated)."""
    framework = mode.split("-")[0]
    server = make_server(
        framework_venv,
        mode,
        zero_code=False,
        PEEKAPI_PROGRAMMATIC="1",
        PEEKAPI_ENDPOINT=ingest.url,
        PEEKAPI_FLUSH_INTERVAL="0.5",
    ).start()
    sent = standard_traffic(server.port)
    events = ingest.wait_for(len(sent), timeout=15)
    server.stop()
    events = ingest.wait_for(len(sent), timeout=5)
    server.assert_clean_output()
    check_events(events, sent, framework)
