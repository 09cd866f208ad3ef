"""Real apps through the real OpenTelemetry instrumentations, every semconv mode.

Each (framework, mode) runs ``_scenarios.py`` in its own process (the semconv mode is
read once per process; the Django instrumentor is a process-wide singleton) against its
own loopback ``Ingest`` in this process. We assert on what left that process: the
events the ingest accepted, the requests' headers, and what the in-memory and console
exporters beside ours received.

Expected ``response_size`` (bytes of body the client received, where the hook can know):

- HEAD: 0 everywhere (no body on the wire, even when the app produced one).
- streamed body: exact everywhere: the ASGI layer counts ``http.response.body``
  messages (FastAPI, Starlette, raw ASGI); on WSGI the body is counted as the server
  writes it (Flask, Django, raw WSGI; Django under ASGI too), see test_wsgi_bodies.py.
- a handler that raises: exact where the instrumented app produced the 500 (FastAPI,
  Flask, Django); 0 for Starlette and raw WSGI, whose 500 comes from outside the
  instrumentation (``ServerErrorMiddleware`` / the server), and raw ASGI (the client got
  an empty 500 from the transport as well).
- Falcon (WSGI) and Pyramid end their span before a streamed body is iterated: 0. Bottle
  runs behind the raw WSGI middleware, which counts streamed bodies (see
  ``test_bottle_streamed_response_size``).
- Pyramid's, aiohttp's and Tornado's 500 page is written after the span ended (by the
  server, aiohttp itself, Tornado's ``send_error``): 0; Tornado's 404 page as well.
- Litestar refuses unknown methods: PURGE is a 405 there (the event still says PURGE).
- everything else: exactly the number of body bytes the client received.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ingest import Ingest, Request

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _scenarios import CREATE_BODY, FRAMEWORKS, PROJECT_KEY, SCENARIOS  # noqa: E402
from fw_apps.common import API_KEY_SECRET, SECRETS, TOKEN_SECRET  # noqa: E402

from peekapi_otel._schema import FIELD_NAMES  # noqa: E402

MODES = ("default", "http", "http/dup")
CAPTURE_REQUEST = "authorization,x-api-key,cookie"
CAPTURE_RESPONSE = "set-cookie"
PROCS = ("plain", "query")
EVENT_KEYS = set(FIELD_NAMES)  # our events carry every wire field

ROUTE = {
    "fastapi": "/items/{item_id}",
    "starlette": "/items/{item_id:int}",
    "flask": "/items/<int:item_id>",
    "django_wsgi": "/items/<int:item_id>",
    "django_asgi": "/items/<int:item_id>",
    "django_wsgiref": "/items/<int:item_id>",
    "raw_asgi": "/items/42",  # no router: the raw path
    "raw_wsgi": "/items/42",
    "litestar": "/items/{item_id}",  # scope["path_template"], not "GET /items/42"
    "bottle": "/items/<item_id:int>",  # the matched Bottle rule
    "falcon_wsgi": "/items/{item_id:int}",  # req.uri_template
    "falcon_asgi": "/items/{item_id:int}",
    "pyramid": "/items/{item_id:\\d+}",  # the route pattern
    "aiohttp": "/items/{item_id}",  # resource.canonical
    "tornado": "/items/{item_id}",  # the URLSpec, groups named after get()'s parameters
    "quart": "/items/42",  # raw ASGI: no route
}
PATHS = {
    "json": "/json",
    "create": "/items",
    "missing": "/missing",  # no route matched: the raw path
    "boom": "/boom",
    "head": "/json",
    "purge": "/purge",
    "stream": "/stream",
    "query": "/json",
}
STATUS = {
    "json": 200,
    "create": 201,
    "missing": 404,
    "boom": 500,
    "head": 200,
    "purge": 200,
    "stream": 200,
    "query": 200,
    "param": 200,
}
STATUS_OVERRIDE = {("litestar", "purge"): 405}
METHOD = {"create": "POST", "head": "HEAD", "purge": "PURGE"}
# Falcon's ``resp.stream`` and Pyramid's ``app_iter`` are written after their
# instrumentation ended the span (see the README's framework table).
STREAM_SIZE_UNKNOWN = {"falcon_wsgi", "pyramid"}
ERROR_SIZE_UNKNOWN = {"starlette", "raw_asgi", "raw_wsgi", "pyramid", "aiohttp", "tornado"}
NOT_FOUND_SIZE_UNKNOWN = {"tornado"}
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def sha_consumer(value: str) -> str:
    return "hash_" + hashlib.sha256(value.encode()).hexdigest()[:12]


CONSUMER = {
    "json": sha_consumer(API_KEY_SECRET),  # x-api-key wins over Authorization
    "create": sha_consumer(API_KEY_SECRET),
    "param": sha_consumer(TOKEN_SECRET),  # the full Authorization header value
}


@dataclass
class Run:
    framework: str
    mode: str
    returncode: int | None
    stderr: str
    report: dict[str, Any]
    console: str
    events: list[dict[str, Any]]
    requests: list[Request]


def _env(mode: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PEEKAPI_"))}
    if mode != "default":
        env["OTEL_SEMCONV_STABILITY_OPT_IN"] = mode
    env["OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"] = CAPTURE_REQUEST
    env["OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE"] = CAPTURE_RESPONSE
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _run_one(framework: str, mode: str, workdir: Path, *extra: str) -> Run:
    ingest = Ingest().start()
    out = workdir / "-".join((framework, mode.replace("/", "_"), *extra))
    out.mkdir()
    report_path = out / "report.json"
    stderr_path = out / "stderr.txt"
    proc: subprocess.Popen[bytes] | None = None
    try:
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "_scenarios.py"),
                    framework,
                    ingest.url,
                    str(report_path),
                    str(out / "spool"),
                    *extra,
                ],
                cwd=str(HERE),
                env=_env(mode),
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
            try:
                returncode: int | None = proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                returncode = None
        # force_flush in the child returns once the ingest acknowledged; a short wait
        # covers the last request's bookkeeping here.
        ingest.wait_for(len(SCENARIOS) * len(PROCS), timeout=5)
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
        console_path = report_path.with_suffix(".console.txt")
        return Run(
            framework,
            mode,
            returncode,
            stderr_path.read_text(errors="replace"),
            report,
            console_path.read_text() if console_path.exists() else "",
            list(ingest.accepted),
            list(ingest.requests),
        )
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        ingest.stop()


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[tuple[str, str], Run]]:
    """All (framework, mode) runs, three processes at a time."""
    with tempfile.TemporaryDirectory(prefix="peekapi-frameworks-") as tmp:
        combos = [(fw, mode) for fw in FRAMEWORKS for mode in MODES]
        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = {c: pool.submit(_run_one, c[0], c[1], Path(tmp)) for c in combos}
            results = {c: f.result() for c, f in futures.items()}
        yield results


@pytest.fixture(params=[(fw, m) for fw in FRAMEWORKS for m in MODES], ids=lambda p: "-".join(p))
def run(request: pytest.FixtureRequest, runs: dict[tuple[str, str], Run]) -> Run:
    result = runs[request.param]
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.report["flushed"] is True
    return result


def _expected_response_size(framework: str, name: str, received: int) -> int:
    if name == "head":
        return 0
    if name == "stream" and framework in STREAM_SIZE_UNKNOWN:
        return 0
    if name == "boom" and framework in ERROR_SIZE_UNKNOWN:
        return 0
    if name == "missing" and framework in NOT_FOUND_SIZE_UNKNOWN:
        return 0
    return received


def test_every_field_of_every_event(run: Run) -> None:
    fw = run.framework
    stats = run.report["stats"]
    assert stats["dropped_total"] == 0, stats
    assert stats["seen"] == len(SCENARIOS) * len(PROCS)
    # Exactly one event per request per processor: no duplicates, nothing missing.
    assert len(run.events) == len(SCENARIOS) * len(PROCS)
    by_key = {(e["metadata"]["span_id"], e["metadata"]["proc"]): e for e in run.events}
    assert len(by_key) == len(run.events)

    for sc in run.report["scenarios"]:
        name = sc["name"]
        status = STATUS_OVERRIDE.get((fw, name), STATUS[name])
        assert sc["status"] == status, (name, "the app answered")
        (span,) = sc["server_spans"]  # one local-root SERVER span per request
        assert HEX32.match(span["trace_id"])
        assert HEX16.match(span["span_id"])
        for proc in PROCS:
            where = f"{fw}/{run.mode}/{name}/{proc}"
            event = by_key[(span["span_id"], proc)]
            assert set(event) == EVENT_KEYS, where
            assert event["method"] == METHOD.get(name, "GET"), where
            path = ROUTE[fw] if name == "param" else PATHS[name]
            if name == "query" and proc == "query":
                path += "?alpha=two&mid=3&zeta=1"  # sorted by name
            assert event["path"] == path, where
            assert event["status_code"] == status, where
            ms = event["response_time_ms"]
            assert isinstance(ms, float), where
            assert ms > 0, where
            assert round(ms, 2) == ms, where
            assert ms <= (sc["t1_ns"] - sc["t0_ns"]) / 1e6 + 1, where
            assert event["request_size"] == (len(CREATE_BODY) if name == "create" else 0), where
            assert event["response_size"] == _expected_response_size(fw, name, sc["body_len"]), (
                where,
                sc["body_len"],
            )
            assert event["consumer_id"] == CONSUMER.get(name), where
            assert event["metadata"] == {
                "proc": proc,
                "app": fw,
                "trace_id": span["trace_id"],
                "span_id": span["span_id"],
            }, where
            stamp = datetime.datetime.fromisoformat(event["timestamp"])
            assert stamp.utcoffset() == datetime.timedelta(0), where
            assert event["timestamp"].endswith("+00:00"), where
            start_us = stamp.timestamp() * 1e6
            assert sc["t0_ns"] / 1e3 - 1000 <= start_us <= sc["t1_ns"] / 1e3, where


def test_the_semconv_mode_really_applied(run: Run) -> None:
    """Guards the matrix itself: each process really ran in its mode. Instrumentations
    from before their opt-in (Pyramid, aiohttp server and Tornado at 0.60b0) report the
    old names whatever the mode, which is upstream's business: their events are the same
    all the same (``test_every_field_of_every_event``)."""
    mode = run.mode if run.report["reads_opt_in"] is not False else "default"
    for sc in run.report["scenarios"]:
        attrs = sc["server_spans"][0]["attributes"]
        old, new = "http.method" in attrs, "http.request.method" in attrs
        assert (old, new) == {
            "default": (True, False),
            "http": (False, True),
            "http/dup": (True, True),
        }[mode], (sc["name"], sorted(attrs))


def test_the_opt_in_probe_sees_the_opt_in(runs: dict[tuple[str, str], Run]) -> None:
    """The probe of ``reads_opt_in`` is not vacuous: Flask's instrumentation has read the
    opt-in since before the oldest supported release."""
    assert runs[("flask", "http")].report["reads_opt_in"] is True


def test_wire_format(run: Run) -> None:
    assert run.requests
    for request in run.requests:
        assert request.path == "/v1/events"
        assert request.headers["x-api-key"] == PROJECT_KEY
        assert request.headers["content-type"] == "application/json"
        assert request.headers["x-peekapi-sdk"].startswith("python-otel/")
        assert "content-encoding" not in request.headers
        assert isinstance(json.loads(request.body), list)


def test_no_raw_secret_reaches_any_exporter(run: Run) -> None:
    memory = json.dumps(run.report["memory_spans"])
    bodies = b"".join(r.body for r in run.requests).decode()
    for secret in SECRETS:
        assert secret not in memory, f"in-memory exporter got {secret!r}"
        assert secret not in run.console, f"console exporter got {secret!r}"
        assert secret not in bodies, f"ingest got {secret!r}"

    # The capture really happened, so the check above is not vacuous.
    (json_span,) = next(s for s in run.report["scenarios"] if s["name"] == "json")["server_spans"]
    attrs = json_span["attributes"]
    assert attrs["http.request.header.x_api_key"] == [sha_consumer(API_KEY_SECRET)]
    assert attrs["http.request.header.authorization"] == [sha_consumer(TOKEN_SECRET)]
    assert attrs["http.request.header.cookie"] == ["[REDACTED]"]
    if "http.response.header.set_cookie" in attrs:
        assert attrs["http.response.header.set_cookie"] == ["[REDACTED]"]
    assert sha_consumer(API_KEY_SECRET) in run.console


def test_wsgiref_http_mode_has_no_path_attribute_yet_the_path_is_right(
    runs: dict[tuple[str, str], Run],
) -> None:
    """wsgiref sets neither RAW_URI nor REQUEST_URI: in ``http`` mode the span has no
    ``url.path``; the event path still is right (the 404 has no route to fall back on)."""
    result = runs[("django_wsgiref", "http")]
    assert result.returncode == 0, result.stderr[-3000:]
    missing = next(s for s in result.report["scenarios"] if s["name"] == "missing")
    attrs = missing["server_spans"][0]["attributes"]
    assert "url.path" not in attrs
    assert "http.target" not in attrs
    assert "http.route" not in attrs
    events = [
        e
        for e in result.events
        if e["metadata"]["span_id"] == missing["server_spans"][0]["span_id"]
    ]
    assert sorted(e["path"] for e in events) == ["/missing", "/missing"]
    query = next(s for s in result.report["scenarios"] if s["name"] == "query")
    paths = {
        e["metadata"]["proc"]: e["path"]
        for e in result.events
        if e["metadata"]["span_id"] == query["server_spans"][0]["span_id"]
    }
    assert paths == {"plain": "/json", "query": "/json?alpha=two&mid=3&zeta=1"}


def test_every_combination_produced_a_report(runs: dict[tuple[str, str], Run]) -> None:
    missing = [k for k, r in runs.items() if not r.report]
    assert not missing, {k: runs[k].stderr[-2000:] for k in missing}


def test_bottle_streamed_response_size(runs: dict[tuple[str, str], Run]) -> None:
    result = runs[("bottle", "default")]
    assert result.returncode == 0, result.stderr[-3000:]
    stream = next(s for s in result.report["scenarios"] if s["name"] == "stream")
    events = [
        e for e in result.events if e["metadata"]["span_id"] == stream["server_spans"][0]["span_id"]
    ]
    assert events
    assert {e["response_size"] for e in events} == {stream["body_len"]}
