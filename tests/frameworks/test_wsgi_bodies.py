"""Streamed responses and chunked request bodies on every WSGI path: Flask, Django and a
raw ``OpenTelemetryMiddleware``, each behind a real server in its own process
(``_wsgi_bodies.py``).

What the events must say:

- a streamed body: the bytes the server wrote (3,000), counted without buffering, and
  the span ends after the body (Flask and Django end theirs before the server writes
  it, so its end is held back);
- HEAD: 0;
- ``str`` chunks: their UTF-8 bytes;
- an iterator that raises after 1,000 bytes: 1,000, and the span is marked failed;
- a client that hangs up after the first chunk: the chunks the server managed to write
  (never the whole body), and the span still ends;
- a 4,000-byte chunked POST (no Content-Length): what the app read, whether it uses
  ``read``, ``readline``, ``readlines`` or iteration. Django over WSGI reads a body
  without Content-Length as empty (its own rule), and the event says what it read;
  under ASGI (uvicorn) it reads the whole body.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
FRAMEWORKS = ("flask", "django", "raw_wsgi", "django_asgi")
UPLOAD = 4000


@pytest.fixture(scope="module", params=FRAMEWORKS)
def report(request: pytest.FixtureRequest) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(HERE / "_wsgi_bodies.py"), request.param],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=HERE,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    result["framework"] = request.param
    result["stderr"] = done.stderr
    return result


def _event(report: dict[str, Any], method: str, path: str, n: int = 0) -> dict[str, Any]:
    found = [e for e in report["events"] if e["method"] == method and e["path"] == path]
    assert len(found) > n, (method, path, report["events"])
    return found[n]


def _streams(report: dict[str, Any]) -> None:
    if report["framework"] == "django_asgi":
        pytest.skip("Django reads a synchronous streamed body whole before ASGI sends it")


def _span(report: dict[str, Any], method: str, target: str) -> dict[str, Any]:
    (span,) = [s for s in report["spans"] if s["method"] == method and s["target"] == target]
    return span


def test_one_event_per_request(report: dict[str, Any]) -> None:
    assert len(report["events"]) == len(report["client"]), report["events"]
    assert "peekapi-otel hit an internal error" not in report["stderr"], report["stderr"]


def test_a_streamed_body_counts_the_bytes_written(report: dict[str, Any]) -> None:
    _streams(report)
    client = report["client"]["stream"]
    assert client == {"status": 200, "received": 3000, "complete": True}
    assert _event(report, "GET", "/stream")["response_size"] == 3000
    # The span ended after the server had the last chunk, not before the body.
    assert _span(report, "GET", "/stream")["end_ns"] >= report["seen"]["last_chunk_ns"]


def test_head_counts_nothing(report: dict[str, Any]) -> None:
    _streams(report)
    assert report["client"]["head"]["received"] == 0
    assert _event(report, "HEAD", "/stream")["response_size"] == 0


def test_text_chunks_count_their_utf8_bytes(report: dict[str, Any]) -> None:
    _streams(report)
    if report["framework"] == "raw_wsgi":
        pytest.skip("WSGI bodies are bytes")
    assert report["client"]["text"]["received"] == 400
    assert _event(report, "GET", "/text")["response_size"] == 400


def test_a_body_that_fails_midway_counts_what_was_written(report: dict[str, Any]) -> None:
    _streams(report)
    client = report["client"]["fail"]
    assert (client["received"], client["complete"]) == (1000, False)
    assert _event(report, "GET", "/fail")["response_size"] == 1000
    assert _span(report, "GET", "/fail")["status"] == "ERROR"


def test_a_client_that_hangs_up_counts_only_what_was_written(report: dict[str, Any]) -> None:
    _streams(report)
    assert report["client"]["disconnect"]["received_first_chunk"]
    assert report["seen"]["closed"] == ["disconnect"], "the server closed the body"
    constants = report["constants"]
    size = _event(report, "GET", "/disconnect")["response_size"]
    total = constants["chunk"] + constants["big"] * constants["big_chunks"]
    # Whole chunks only: the first, then as many big ones as the server wrote.
    assert constants["chunk"] <= size < total
    assert (size - constants["chunk"]) % constants["big"] == 0


@pytest.mark.parametrize("how", ["read", "readline", "readlines", "iter"])
def test_a_chunked_request_counts_what_the_app_read(report: dict[str, Any], how: str) -> None:
    app_read = report["client"][f"upload-{how}"]["app_read"]
    expected = 0 if report["framework"] == "django" else UPLOAD  # see the module docstring
    assert app_read == expected
    sizes = [e["request_size"] for e in report["events"] if e["path"] == "/upload"]
    assert sizes.count(expected) == 4, sizes


def test_a_django_view_that_reads_the_servers_stream_is_counted(report: dict[str, Any]) -> None:
    if report["framework"] != "django":
        pytest.skip("Django over WSGI only")
    assert report["client"]["upload-meta"]["app_read"] == UPLOAD
    sizes = [e["request_size"] for e in report["events"] if e["path"] == "/upload"]
    assert sorted(sizes) == [0, 0, 0, 0, UPLOAD]
