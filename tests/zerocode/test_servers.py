"""Issue cases 1 and 6: every example under every supported server, zero-code and
programmatic, in a virtual environment holding only what the README tells a user to
install, against a real loopback ingest.

Case 1 sets nothing but ``PEEKAPI_API_KEY`` and ``PEEKAPI_ENDPOINT``: the first batch of
requests must arrive within the default flush interval while the server runs; the
second batch is sent right before SIGTERM and must arrive through the shutdown flush.
"""

from __future__ import annotations

import pytest

from ingest import Ingest
from zerocode.checks import check_events
from zerocode.support import MakeServer, Venv, log, standard_traffic

pytestmark = pytest.mark.slow

DEFAULT_FLUSH = 5.0
MARGIN = 10.0

ZERO_CODE = [
    "fastapi-uvicorn",
    "fastapi-uvicorn-workers2",
    "fastapi-gunicorn-uvicornworker",
    "flask-gunicorn-w2",
    "flask-gunicorn-w2-preload",
    "flask-devserver",
    "django-runserver",
    "django-gunicorn",
    "django-uvicorn-asgi",
]


@pytest.mark.parametrize("mode", ZERO_CODE)
def test_zero_code_one_event_per_request(
    user_venv: Venv, make_server: MakeServer, ingest: Ingest, mode: str
) -> None:
    framework = mode.split("-")[0]
    server = make_server(user_venv, mode, PEEKAPI_ENDPOINT=ingest.url).start()
    first = standard_traffic(server.port)
    events = ingest.wait_for(len(first), timeout=DEFAULT_FLUSH + MARGIN)
    assert len(events) >= len(first), (
        f"{len(events)} of {len(first)} events within the flush interval\n{server.output()}"
    )
    second = standard_traffic(server.port)
    rc = server.stop()
    total = len(first) + len(second)
    events = ingest.wait_for(total, timeout=5)
    output = server.assert_clean_output()
    direct = len(events)
    log(f"{mode}: {direct}/{total} events delivered by SIGTERM time, exit code {rc}")
    if direct < total:
        # Nothing may be lost: what SIGTERM did not send must be on disk and delivered
        # by the next start of the same app (same spool), exactly once.
        again = make_server(user_venv, mode, PEEKAPI_ENDPOINT=ingest.url).start()
        try:
            events = ingest.wait_for(total, timeout=15)
        finally:
            again.stop()
        again.assert_clean_output()
        log(f"{mode}: {len(events)}/{total} events after a restart (spool recovery)")
    assert len(events) == total, f"lost {total - len(events)} events\n{output}"
    check_events(events, first + second, framework)
    assert direct == total, (
        f"SIGTERM did not send {total - direct} events (the next start recovered them)"
    )


@pytest.mark.parametrize(
    "mode",
    ["fastapi-uvicorn-workers2", "fastapi-gunicorn-uvicornworker", "flask-gunicorn-w2"],
)
def test_sigterm_to_the_whole_process_group(
    user_venv: Venv, make_server: MakeServer, ingest: Ingest, mode: str
) -> None:
    """systemd (KillMode=control-group) signals the master and every worker at once."""
    framework = mode.split("-")[0]
    server = make_server(user_venv, mode, PEEKAPI_ENDPOINT=ingest.url).start()
    sent = standard_traffic(server.port) + standard_traffic(server.port)
    rc = server.stop(group=True)
    events = ingest.wait_for(len(sent), timeout=5)
    log(f"{mode}: {len(events)}/{len(sent)} events after a process-group SIGTERM, rc {rc}")
    server.assert_clean_output()
    check_events(events, sent, framework)


PROGRAMMATIC = [
    "fastapi-uvicorn",
    "flask-gunicorn-w2",
    "flask-devserver",
    "django-runserver",
    "django-gunicorn",
]


@pytest.mark.parametrize("mode", PROGRAMMATIC)
def test_programmatic_one_event_per_request(
    user_venv: Venv, make_server: MakeServer, ingest: Ingest, mode: str
) -> None:
    """``PEEKAPI_PROGRAMMATIC=1 <server>`` without opentelemetry-instrument."""
    framework = mode.split("-")[0]
    server = make_server(
        user_venv,
        mode,
        zero_code=False,
        PEEKAPI_PROGRAMMATIC="1",
        PEEKAPI_ENDPOINT=ingest.url,
        PEEKAPI_FLUSH_INTERVAL="0.5",
    ).start()
    sent = standard_traffic(server.port)
    events = ingest.wait_for(len(sent), timeout=MARGIN)
    server.stop()
    events = ingest.wait_for(len(sent), timeout=2)
    server.assert_clean_output()
    check_events(events, sent, framework)
