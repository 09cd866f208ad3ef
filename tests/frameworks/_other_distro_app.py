"""Run under ``opentelemetry-instrument`` with another distro and configurator selected:
the PeekAPI pre-instrument hook must still chain its glue into the Falcon, Tornado,
Pyramid and aiohttp instrumentors. Sends two requests per framework, in the order
given, and flushes after each framework (so the ingest gets them in that order).

    opentelemetry-instrument python _other_distro_app.py FRAMEWORK...
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _scenarios import (
    Scenario,
    _aiohttp_sender,
    _tornado_sender,
    _werkzeug_sender,
)
from fw_apps.common import TOKEN_SECRET
from opentelemetry import trace

SCENARIOS = (
    Scenario("param", "GET", "/items/42", {"Authorization": TOKEN_SECRET}),
    Scenario("create", "POST", "/items", {"Content-Type": "application/json"}, b'{"a":1}'),
)


def one(framework: str) -> bool:
    stop = lambda: None  # noqa: E731
    if framework == "falcon":
        from fw_apps.falcon_app import build_wsgi

        send = _werkzeug_sender(build_wsgi())
    elif framework == "pyramid":
        from fw_apps.pyramid_app import make_app
        from fw_apps.raw_wsgi_app import server_errors

        send = _werkzeug_sender(server_errors(make_app()))
    elif framework == "aiohttp":
        from fw_apps.aiohttp_app import make_app as make_aiohttp

        send, stop = _aiohttp_sender(make_aiohttp())
    elif framework == "tornado":
        from fw_apps.tornado_app import make_app as make_tornado

        send, stop = _tornado_sender(make_tornado())
    else:
        raise SystemExit(f"unknown framework {framework!r}")
    try:
        for scenario in SCENARIOS:
            status, body = send(scenario)
            print(framework, scenario.name, status, len(body), flush=True)
    finally:
        stop()
    provider = trace.get_tracer_provider()
    return bool(provider.force_flush(10_000))  # type: ignore[attr-defined]


def main() -> int:
    results = [one(framework) for framework in sys.argv[1:]]  # every one, even after a failure
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
