"""`peekapi-otel check` as a real process against a real loopback ingest."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.support import Result, run_cli
from ingest import Ingest, Reply, free_port

RUN_TIMEOUT = 30.0
KEY = "proj-live-5e3c9a1b7d"


def check(env: dict[str, str]) -> Result:
    return run_cli("check", env=env, timeout=RUN_TIMEOUT)


def test_ready(ingest: Ingest) -> None:
    result = check({"PEEKAPI_API_KEY": KEY, "PEEKAPI_ENDPOINT": ingest.url})
    assert result.code == 0, result.text
    assert "verdict: ready" in result.out
    assert "accepts this API key" in result.out
    assert KEY not in result.text
    assert "proj…7d" in result.out  # masked, still recognisable
    assert f"endpoint: {ingest.url} is allowed" in result.out
    # The probe is an empty batch carrying the key.
    assert len(ingest.requests) == 1
    probe = ingest.requests[0]
    assert probe.body == b"[]"
    assert probe.headers["x-api-key"] == KEY
    assert ingest.accepted == []


def test_short_key_fully_masked(ingest: Ingest) -> None:
    result = check({"PEEKAPI_API_KEY": "k3y-1234", "PEEKAPI_ENDPOINT": ingest.url})
    assert result.code == 0, result.text
    assert "k3y-1234" not in result.text
    assert "****" in result.out


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key(ingest: Ingest, status: int) -> None:
    ingest.default = Reply(status=status, body=b'{"error":"bad key"}')
    result = check({"PEEKAPI_API_KEY": KEY, "PEEKAPI_ENDPOINT": ingest.url})
    assert result.code == 1, result.text
    assert "rejects this API key" in result.out
    assert KEY not in result.text
    assert "verdict: ready" not in result.out
    assert "verdict: not ready (the answer is 401, 403): sending pauses" in result.out
    assert "kept in the disk spool" in result.out


def test_redirect_is_a_configuration_error(ingest: Ingest) -> None:
    ingest.default = Reply(
        status=308, headers={"Location": "https://user:s3cretpw@elsewhere.example/v1"}
    )
    result = check({"PEEKAPI_API_KEY": KEY, "PEEKAPI_ENDPOINT": ingest.url})
    assert result.code == 1, result.text
    assert "redirect to https://***@elsewhere.example/v1" in result.out
    assert "s3cretpw" not in result.text
    assert "never followed" in result.out
    assert len(ingest.requests) == 1  # not followed


def test_ingest_down() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/events"
    result = check({"PEEKAPI_API_KEY": KEY, "PEEKAPI_ENDPOINT": url, "PEEKAPI_TIMEOUT": "2"})
    assert result.code == 1, result.text
    assert "does not answer" in result.out
    assert result.seconds < 15


def test_server_error_is_not_ready(ingest: Ingest) -> None:
    ingest.default = Reply(status=503, body=b"overloaded")
    result = check({"PEEKAPI_API_KEY": KEY, "PEEKAPI_ENDPOINT": ingest.url})
    assert result.code == 1, result.text
    assert "answers 503" in result.out


def test_no_api_key(ingest: Ingest) -> None:
    result = check({"PEEKAPI_ENDPOINT": ingest.url})
    assert result.code == 1, result.text
    assert "no API key" in result.out
    assert "PEEKAPI_API_KEY" in result.out
    assert ingest.requests == []  # nothing to probe with


@pytest.mark.parametrize(
    ("endpoint", "named"),
    [
        ("http://10.0.0.1/v1/events", "plain http"),
        ("https://10.0.0.1/v1/events", "private"),
        ("https://169.254.169.254/latest", "private, link-local"),
        ("https://user:pw@example.com/x", "user-info"),
        ("ftp://x", "must use https"),
    ],
)
def test_refused_endpoint(endpoint: str, named: str) -> None:
    result = check({"PEEKAPI_API_KEY": KEY, "PEEKAPI_ENDPOINT": endpoint})
    assert result.code == 1, result.text
    assert "PEEKAPI_ENDPOINT is refused" in result.out
    assert named in result.out
    verdict = [line for line in result.out.splitlines() if line.startswith("verdict:")]
    assert len(verdict) == 1, result.out
    assert "ready" not in verdict[0]
    # Never contacted: no probe line, and no connect timeout was waited for.
    assert "ingest:" not in result.out
    assert result.seconds < 10
    assert "pw@" not in result.text


@pytest.mark.parametrize(
    "template",
    ["http://user:pw@127.0.0.1:{port}/v1/events", "ftp://127.0.0.1:{port}/v1/events"],
)
def test_refused_endpoint_is_never_contacted(ingest: Ingest, template: str) -> None:
    endpoint = template.format(port=ingest.port)
    result = check({"PEEKAPI_API_KEY": KEY, "PEEKAPI_ENDPOINT": endpoint})
    assert result.code == 1, result.text
    assert "PEEKAPI_ENDPOINT is refused" in result.out
    time.sleep(0.2)
    assert ingest.requests == []


def test_bad_numeric_env_warns_and_uses_default(ingest: Ingest) -> None:
    env = {"PEEKAPI_API_KEY": KEY, "PEEKAPI_ENDPOINT": ingest.url, "PEEKAPI_BATCH_SIZE": "abc"}
    result = check(env)
    assert result.code == 0, result.text  # a bad optional value falls back, still ready
    warnings = [line for line in result.out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.out
    assert "PEEKAPI_BATCH_SIZE" in warnings[0]
    assert "'abc'" in warnings[0]
    assert "default" in warnings[0]
    assert "batches of 100" in result.out
    # Printed once, not once more by the library's own log line.
    assert result.text.count("PEEKAPI_BATCH_SIZE") == 1


def test_warnings_never_show_the_key(ingest: Ingest) -> None:
    env = {"PEEKAPI_API_KEY": KEY, "PEEKAPI_ENDPOINT": ingest.url, "PEEKAPI_TIMEOUT": "-1"}
    result = check(env)
    assert "PEEKAPI_TIMEOUT" in result.out
    assert KEY not in result.text


def test_reports_where_events_wait(ingest: Ingest, tmp_path: Path) -> None:
    root = tmp_path / "spool-root"
    env = {
        "PEEKAPI_API_KEY": KEY,
        "PEEKAPI_ENDPOINT": ingest.url,
        "PEEKAPI_STORAGE_PATH": str(root),
    }
    result = check(env)
    assert result.code == 0, result.text
    assert str(root) in result.out
    assert not root.exists()  # check only looks, it creates nothing


@pytest.mark.parametrize("command", ["demo", "spool", "check"])
def test_help(command: str) -> None:
    result = run_cli(command, "--help")
    assert result.code == 0, result.text
    assert f"peekapi-otel {command}" in result.out
    assert result.err == ""


def test_via_module_entry_point(ingest: Ingest) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "peekapi_otel.server._cli", "check"],
        env={**os.environ, "PEEKAPI_API_KEY": KEY, "PEEKAPI_ENDPOINT": ingest.url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, 9)
            proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "verdict: ready" in out


@pytest.mark.parametrize("status", [400, 404, 405, 422])
def test_other_4xx_says_the_exporter_drops_and_exits_non_zero(ingest: Ingest, status: int) -> None:
    # The running exporter drops such batches as rejected; check must not promise the spool.
    ingest.default = Reply(status=status, body=b'{"error":"no such route"}')
    result = check({"PEEKAPI_API_KEY": KEY, "PEEKAPI_ENDPOINT": ingest.url})
    assert result.code == 1, result.text
    assert f"answers {status}" in result.out
    (verdict,) = [line for line in result.out.splitlines() if line.startswith("verdict:")]
    assert verdict.startswith("verdict: not ready (the answer is other 4xx): the batch is dropped")
    assert "counted as rejected" in verdict
    assert "kept" not in verdict
    marked = [line for line in result.out.splitlines() if line.startswith(" > ")]
    assert len(marked) == 1
    assert "other 4xx" in marked[0]


@pytest.mark.parametrize(
    ("status", "row"),
    [
        (200, "2xx"),
        (429, "408, 425, 429"),
        (503, "5xx"),
        (413, "413"),
        (401, "401, 403"),
        (308, "3xx"),
        (404, "other 4xx"),
        (None, "no answer"),
    ],
)
def test_check_and_classify_read_one_decision_table(status: int | None, row: str) -> None:
    from peekapi_otel.delivery._retry import DECISION_TABLE, classify, decide
    from peekapi_otel.delivery._transport import SendResult

    decision = decide(status)
    assert decision in DECISION_TABLE
    assert decision.answers.startswith(row)
    assert classify(SendResult(status=status)) is decision.outcome


def test_decision_table_keeps_every_outcome() -> None:
    from peekapi_otel.delivery._retry import Outcome, decide

    expected = {
        **dict.fromkeys(range(200, 300), Outcome.OK),
        **dict.fromkeys((*range(300, 400), 401, 403), Outcome.PAUSE),
        **{s: Outcome.REJECTED for s in range(400, 500) if s not in (401, 403, 408, 413, 425, 429)},
        **dict.fromkeys(
            (408, 425, 429, *range(500, 1000), *range(100, 200), 0, 1000), Outcome.RETRY
        ),
        413: Outcome.TOO_LARGE,
        None: Outcome.RETRY,
    }
    assert {s: decide(s).outcome for s in expected} == expected


def test_control_characters_in_the_answer_are_escaped(ingest: Ingest) -> None:
    ingest.default = Reply(status=400, body=b"bad\x1b]0;pwned\x07 request")
    result = check({"PEEKAPI_API_KEY": KEY, "PEEKAPI_ENDPOINT": ingest.url})
    assert result.code == 1, result.text
    assert "\x1b" not in result.out
    assert "bad\\x1b]0;pwned\\x07 request" in result.out
