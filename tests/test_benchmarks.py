"""The benchmark harness still drives the product: each way in (zero code, ``configure()``,
a processor on the user's own provider) runs a few requests through
``benchmarks/_worker.py`` exactly as ``run.py`` does, every framework at least once, and
every request arrives once at a loopback ingest. (Timings are not asserted here.)"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ingest import Ingest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
REQUESTS = 25
CONSUMER_ID = "hash_" + hashlib.sha256(b"consumer-key-123456").hexdigest()[:12]


def _ask(proc: subprocess.Popen[str], command: str | None) -> dict[str, Any]:
    assert proc.stdin is not None
    assert proc.stdout is not None
    if command is not None:
        proc.stdin.write(command + "\n")
        proc.stdin.flush()
    for _ in range(1000):  # skip anything an app prints that is not a reply
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"worker exited: {proc.wait(10)}")
        if line.startswith("@@"):
            reply: dict[str, Any] = json.loads(line[2:])
            return reply
    raise AssertionError("no reply")


@pytest.mark.parametrize(
    ("framework", "variant"),
    [
        ("raw_asgi", "configure"),
        ("raw_asgi", "zero"),
        ("fastapi", "provider"),
        ("raw_wsgi", "zero"),
        ("flask", "configure"),
        ("django", "zero"),
    ],
)
def test_worker_delivers_every_request(
    ingest: Ingest, tmp_path: Path, framework: str, variant: str
) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from _apps import child_env  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(BENCH))
    proc = subprocess.Popen(
        [
            sys.executable,
            str(BENCH / "_worker.py"),
            "--framework",
            framework,
            "--variant",
            variant,
            "--ingest",
            ingest.url,
            "--storage",
            str(tmp_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(framework, variant),
        cwd=str(BENCH.parent),
    )
    try:
        assert _ask(proc, None)["processor"] is True
        assert _ask(proc, f"run {REQUESTS}")["ok"] is True
        stats = _ask(proc, "stats")
        assert stats["seen"] == stats["sent"] == REQUESTS
        assert _ask(proc, "quit") == {"bye": True}
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        stderr = proc.stderr.read() if proc.stderr else ""
    keys = ingest.keys()
    assert sum(keys.values()) == len(keys) == REQUESTS, stderr
    # The way in is wired in full: the consumer and the response size are on every event.
    events = ingest.wait_for(REQUESTS, timeout=0)
    assert {e["consumer_id"] for e in events} == {CONSUMER_ID}
    assert all(e["response_size"] > 0 and e["status_code"] == 200 for e in events), events[0]


@pytest.mark.parametrize("framework", ["raw_asgi", "flask"])
def test_peekapi_middleware_inside_opentelemetry_delivers_every_request(
    ingest: Ingest, tmp_path: Path, framework: str
) -> None:
    """The like-for-like baseline (d2): the ``peekapi`` middleware inside an app that runs
    OpenTelemetry; both are there, and the middleware's events all arrive."""
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); from _apps import build\n"
        "built = build(sys.argv[2], 'peekapi_otel', sys.argv[3], sys.argv[4])\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import "
        "InMemorySpanExporter\n"
        "spans = InMemorySpanExporter()\n"
        "trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(spans))\n"
        "built.driver.run(int(sys.argv[5])); built.drain(); built.client.shutdown()\n"
        "server = [s for s in spans.get_finished_spans() if s.kind.name == 'SERVER']\n"
        "print(json.dumps({'info': built.info, 'server_spans': len(server)}))\n"
    )
    args = ["-c", code, str(BENCH), framework, ingest.url, str(tmp_path), str(REQUESTS)]
    done = _run_bench(args, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["info"]["peekapi_client"] is True
    assert out["server_spans"] == REQUESTS
    events = ingest.wait_for(REQUESTS, timeout=30)
    assert len(events) == REQUESTS
    assert all(e["path"] == "/items/42" and e["status_code"] == 200 for e in events), events[0]


def _last_reply(text: str) -> dict[str, Any]:
    line = next(x for x in reversed(text.splitlines()) if x.startswith("@@"))
    reply: dict[str, Any] = json.loads(line[2:])
    return reply


def _bench_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PEEKAPI_"))}


def _run_bench(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` from the project root, as ``run.py`` runs its parts: no user
    ``OTEL_*``/``PEEKAPI_*`` settings."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=_bench_env(),
        cwd=str(BENCH.parent),
        timeout=timeout,
    )


def test_throughput_section_delivers_every_event() -> None:
    ingest = subprocess.Popen(
        [sys.executable, str(BENCH / "_ingest.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert ingest.stdout is not None
        url = f"http://127.0.0.1:{int(ingest.stdout.readline())}/v1/events"
        done = _run_bench(
            [str(BENCH / "_throughput.py"), "--ingest", url, "--events", "200", "--rounds", "1"]
        )
    finally:
        ingest.terminate()
        ingest.wait(10)
    assert done.returncode == 0, done.stderr[-3000:]
    data = _last_reply(done.stdout)
    assert data["ingest_events_received"] == data["ingest_events_expected"] > 0


def test_memory_section_loses_nothing() -> None:
    done = _run_bench([str(BENCH / "_memory.py"), "--variant", "ours", "--events", "2000"])
    assert done.returncode == 0, done.stderr[-3000:]
    data = _last_reply(done.stdout)
    assert data["lost"] == 0
    assert data["spooled"] == 2000


@pytest.mark.parametrize(("framework", "way"), [("raw_asgi", "provider"), ("flask", "configure")])
def test_one_process_section_delivers_every_request(
    ingest: Ingest, tmp_path: Path, framework: str, way: str
) -> None:
    """``_one_process.py`` (section 1c) builds every variant side by side; the two
    ``peekapi`` clients and the way in each deliver every request once."""
    args = ["--framework", framework, "--way", way, "--ingest", ingest.url]
    args += ["--storage", str(tmp_path), "--requests", "20", "--rounds", "1", "--warmup", "0"]
    done = _run_bench([str(BENCH / "_one_process.py"), *args], timeout=120)
    assert done.returncode == 0, done.stderr
    result = _last_reply(done.stdout)
    assert result["ok"] is True
    assert sorted(result["us"]) == ["bare", "otel", "ours", "peekapi", "peekapi_otel"]
    assert all(len(values) == 1 for values in result["us"].values())
    sent = result["events_per_sender"]
    assert sent == 21
    events = ingest.wait_for(3 * sent, timeout=30)
    assert len(events) == 3 * sent
    ours = [e for e in events if e.get("metadata")]
    assert len(ours) == sent  # OpenTelemetry alone (b) sends nothing
    assert len(set(ingest.keys())) == sent
    assert {e["consumer_id"] for e in ours} == {CONSUMER_ID}
