"""Bad configuration: a clear message naming what is wrong, and the app keeps serving.

Code arguments raise ``ValueError``; bad environment values log one warning naming the
variable and fall back to the default; a missing API key or a refused endpoint logs one
clear error and disables PeekAPI export only.
"""

from __future__ import annotations

import http.client
import logging
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import peekapi_otel
from ingest import Ingest
from peekapi_otel import Options, PeekApiSpanExporter, PeekApiSpanProcessor, stats
from peekapi_otel.hooks import instrumentor_kwargs
from peekapi_otel.otel._configure import SANITIZE

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def peek_records(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("peekapi_otel") and r.levelno >= level
    ]


def serve_one(provider: TracerProvider) -> int:
    from flask import Flask
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    app = Flask(__name__)

    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    FlaskInstrumentor.instrument_app(app, tracer_provider=provider, **instrumentor_kwargs("flask"))
    client = app.test_client()
    response = client.get("/hello", headers={"x-api-key": "k"})
    return response.status_code


# --- code arguments ----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"api_key": "k", "endpoint": "http://10.0.0.1/v1/events"},
        {"api_key": "k", "endpoint": "http://169.254.169.254/latest/meta-data"},
        {"api_key": "k", "endpoint": "https://user:pw@host.example/v1/events"},
        {"api_key": "k", "endpoint": "ftp://host.example/v1/events"},
        {"api_key": "k", "flush_interval": "soon"},
        {"api_key": "k", "batch_size": -1},
        {"api_key": "k", "timeout": -1.0},
        {"api_key": "k", "debug": "maybe"},
        {"api_key": "k", "metadata": "[1, 2]"},
        {"api_key": "k", "identify_consumer": 42},
        {"api_key": "k", "not_an_option": True},
    ],
)
def test_bad_code_arguments_raise_value_error_everywhere(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any]
) -> None:
    # configure() merges the sanitize default into os.environ: let monkeypatch undo it.
    monkeypatch.setenv(SANITIZE, "")
    name = next(k for k in kwargs if k != "api_key")
    with pytest.raises(ValueError, match=name):
        Options.from_env({}, **kwargs)
    with pytest.raises(ValueError, match=name):
        PeekApiSpanProcessor(**kwargs)
    with pytest.raises(ValueError, match=name):
        PeekApiSpanExporter(**kwargs)
    with pytest.raises(ValueError, match=name):
        peekapi_otel.configure(**kwargs)


def test_processor_refuses_options_given_twice() -> None:
    exporter = PeekApiSpanExporter(api_key="")
    with pytest.raises(ValueError, match="either"):
        PeekApiSpanProcessor(exporter, api_key="k")


# --- in-process: the app keeps serving ----------------------------------------------


def test_no_api_key_one_clear_error_and_the_app_and_other_exporters_work(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.WARNING)
    provider = TracerProvider()
    processor = PeekApiSpanProcessor(storage_path=str(tmp_path))
    memory = InMemorySpanExporter()
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    try:
        errors = peek_records(caplog, logging.ERROR)
        assert len(errors) == 1
        assert "no API key" in errors[0]
        assert "PEEKAPI_API_KEY" in errors[0]
        assert "keeps serving" in errors[0]
        assert serve_one(provider) == 200
        assert serve_one(provider) == 200
        assert len(memory.get_finished_spans()) == 2  # the user's telemetry still works
        dropped = stats()["dropped"]
        assert isinstance(dropped, dict)
        assert dropped["disabled"] == 2
        assert len(peek_records(caplog, logging.ERROR)) == 1
        assert processor.force_flush(1000) is True
    finally:
        provider.shutdown()
    assert not (tmp_path / "spool").exists() or not any((tmp_path / "spool").iterdir())


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/v1/events",
        "http://169.254.169.254/latest/meta-data",
        "https://user:pw@host.example/v1/events",
        "ftp://host.example/v1/events",
    ],
)
def test_refused_endpoint_env_disables_export_and_the_app_serves(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    caplog.set_level(logging.WARNING)
    monkeypatch.setenv("PEEKAPI_API_KEY", "k")
    monkeypatch.setenv("PEEKAPI_ENDPOINT", url)
    provider = TracerProvider()
    provider.add_span_processor(PeekApiSpanProcessor())
    try:
        messages = peek_records(caplog)
        assert any("PEEKAPI_ENDPOINT is refused" in m for m in messages), messages
        assert any("disabled" in m for m in peek_records(caplog, logging.ERROR))
        assert serve_one(provider) == 200
    finally:
        provider.shutdown()
    assert "pw@" not in caplog.text


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("PEEKAPI_FLUSH_INTERVAL", "soon"),
        ("PEEKAPI_FLUSH_INTERVAL", "-1"),
        ("PEEKAPI_BATCH_SIZE", "-10"),
        ("PEEKAPI_BATCH_SIZE", "lots"),
        ("PEEKAPI_TIMEOUT", "-1"),
        ("PEEKAPI_DEBUG", "maybe"),
        ("PEEKAPI_METADATA", "[1, 2, 3]"),
        ("PEEKAPI_METADATA", "not json"),
    ],
)
def test_bad_env_value_one_warning_and_events_still_delivered(
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    ingest: Ingest,
    tmp_path: Path,
    var: str,
    value: str,
) -> None:
    caplog.set_level(logging.WARNING)
    monkeypatch.setenv("PEEKAPI_API_KEY", "k")
    monkeypatch.setenv("PEEKAPI_ENDPOINT", ingest.url)
    monkeypatch.setenv("PEEKAPI_STORAGE_PATH", str(tmp_path))
    monkeypatch.setenv(var, value)
    provider = TracerProvider()
    processor = PeekApiSpanProcessor()
    provider.add_span_processor(processor)
    try:
        (message,) = peek_records(caplog)
        assert var in message
        assert "using the default" in message
        assert serve_one(provider) == 200
        assert processor.force_flush(10_000)
        (event,) = ingest.wait_for(1, timeout=10)
        assert event["path"] == "/hello"
        assert event["status_code"] == 200
    finally:
        provider.shutdown()


# --- a real app in its own process ---------------------------------------------------

APP = r"""
import sys
from werkzeug.serving import make_server
from flask import Flask
from opentelemetry.instrumentation.flask import FlaskInstrumentor
import peekapi_otel
from peekapi_otel.hooks import instrumentor_kwargs

peekapi_otel.configure()
app = Flask(__name__)

@app.get("/hello")
def hello():
    return {"hello": "world"}

FlaskInstrumentor.instrument_app(app, **instrumentor_kwargs("flask"))
server = make_server("127.0.0.1", 0, app)
print(server.server_port, flush=True)
server.serve_forever()
"""


@pytest.fixture
def app_script(tmp_path: Path) -> Path:
    path = tmp_path / "bad_config_app.py"
    path.write_text(APP)
    return path


def _read_port(proc: subprocess.Popen[bytes], timeout: float) -> int:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or proc.poll() is not None:
            raise AssertionError("the app did not start")
        ready, _, _ = select.select([proc.stdout], [], [], remaining)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 64)
            if not chunk:
                raise AssertionError("the app closed stdout")
            line += chunk
    return int(line.strip())


@pytest.mark.parametrize(
    ("env", "needle", "delivers"),
    [
        ({"PEEKAPI_API_KEY": ""}, "PEEKAPI_API_KEY", False),
        (
            {"PEEKAPI_ENDPOINT": "http://169.254.169.254/latest/meta-data"},
            "PEEKAPI_ENDPOINT",
            False,
        ),
        ({"PEEKAPI_FLUSH_INTERVAL": "-1"}, "PEEKAPI_FLUSH_INTERVAL", True),
        ({"PEEKAPI_DEBUG": "maybe"}, "PEEKAPI_DEBUG", True),
        ({"PEEKAPI_METADATA": "[1]"}, "PEEKAPI_METADATA", True),
    ],
    ids=["no-key", "metadata-endpoint", "negative-flush", "debug-maybe", "metadata-list"],
)
def test_real_app_with_bad_env_serves_and_says_why(
    app_script: Path,
    ingest: Ingest,
    tmp_path: Path,
    env: dict[str, str],
    needle: str,
    delivers: bool,
) -> None:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PEEKAPI_"))}
    child_env.update(
        {
            "PEEKAPI_API_KEY": "project-key",
            "PEEKAPI_ENDPOINT": ingest.url,
            "PEEKAPI_STORAGE_PATH": str(tmp_path / "spool"),
            "PEEKAPI_SHUTDOWN_TIMEOUT": "5",
        }
    )
    child_env.update(env)
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(app_script)],
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=str(tmp_path),
        )
        try:
            port = _read_port(proc, timeout=30)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("GET", "/hello")
                response = conn.getresponse()
                assert response.status == 200
                assert response.read() == b'{"hello":"world"}\n'
            finally:
                conn.close()
            proc.terminate()  # SIGTERM: the handler configure() installed flushes
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    text = stderr_path.read_text(errors="replace")
    naming = [line for line in text.splitlines() if needle in line]
    assert naming, text
    assert naming[0].startswith("peekapi-otel"), text
    assert "Traceback" not in text, text
    if delivers:
        (event,) = ingest.wait_for(1, timeout=10)
        assert (event["path"], event["status_code"]) == ("/hello", 200)
        assert len(naming) == 1, text  # exactly one message, and a warning only
    else:
        assert ingest.accepted == []
