"""`peekapi-otel serve` stores what the official PeekAPI clients send: the recorded batch
of each SDK (in ``tests/cli/fixtures``, exactly as the SDKs sent them) and the real
``peekapi`` 0.1.0 Python SDK from PyPI, both against a real `serve` process."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.test_serve import Ingest, post, start_serve
from peekapi_otel._schema import FIELD_NAMES, REQUIRED_FIELDS, WIRE_FIELDS

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures"
SDK_BATCHES = sorted(FIXTURES.glob("peekapi-*-batch.json"))
DEFAULTS = {field.name: field.default for field in WIRE_FIELDS}


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Ingest]:
    ingest = start_serve(tmp_path / "events.db")
    yield ingest
    ingest.stop()


def rows(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        found = conn.execute(f"SELECT {', '.join(FIELD_NAMES)} FROM events ORDER BY id")
        return [dict(row) for row in found.fetchall()]
    finally:
        conn.close()


def as_row(event: dict[str, Any]) -> dict[str, Any]:
    """What the store keeps of a client's event: every wire field, an absent optional
    one as its default, unknown fields dropped."""
    row = {name: event.get(name, DEFAULTS[name]) for name in FIELD_NAMES}
    if row["metadata"] is not None:
        row["metadata"] = json.dumps(row["metadata"], separators=(",", ":"))
    row["response_time_ms"] = float(row["response_time_ms"])
    return row


def test_both_sdk_batches_are_on_disk() -> None:
    assert [p.name for p in SDK_BATCHES] == [
        "peekapi-python-0.1.0-batch.json",
        "peekapi-sdk-node-0.1.0-batch.json",
    ]


@pytest.mark.parametrize("batch", SDK_BATCHES, ids=lambda p: p.name.split("-batch")[0])
def test_every_event_of_an_official_sdk_batch_is_stored(serve: Ingest, batch: Path) -> None:
    recorded = json.loads(batch.read_text())
    events = recorded["body"]
    headers = {k: v for k, v in recorded["headers"].items() if k.lower() != "content-length"}
    # What makes these batches different from ours: fields left out.
    assert any(set(event) < set(FIELD_NAMES) for event in events)
    assert all(set(event) >= REQUIRED_FIELDS for event in events)

    assert post(serve.port, events, headers=headers) == (
        200,
        {"accepted": len(events), "duplicates": 0},
    )

    assert rows(serve.db) == [as_row(event) for event in events]
    # And shown: the dashboard's figures count every one of them.
    shown = summary(serve)
    assert shown["totals"]["requests"] == len(events)
    assert sum(e["requests"] for e in shown["endpoints"]) == len(events)
    assert {(e["method"], e["path"]) for e in shown["endpoints"]} == {
        shown_endpoint(e) for e in events
    }
    assert shown["totals"]["errors"] == sum(e["status_code"] >= 400 for e in events)


def test_unknown_fields_are_ignored_and_a_null_size_is_0(serve: Ingest) -> None:
    event = {
        "method": "GET",
        "path": "/x",
        "status_code": 200,
        "response_time_ms": 1,
        "response_size": None,
        "timestamp": "2026-12-03T06:40:40.900Z",
        "environment": "prod",  # not a wire field
    }
    assert post(serve.port, [event]) == (200, {"accepted": 1, "duplicates": 0})
    assert rows(serve.db) == [
        {
            **as_row(event),
            "request_size": 0,
            "response_size": 0,
            "consumer_id": None,
            "metadata": None,
        }
    ]


def test_the_peekapi_python_sdk_is_stored_whole(serve: Ingest, tmp_path: Path) -> None:
    """The ``peekapi`` 0.1.0 SDK, unchanged: its WSGI middleware on a Flask app and its
    ``client.track({...})`` as its README shows it (no sizes, consumer or metadata)."""
    from flask import Flask
    from peekapi import PeekApiClient, PeekApiWSGI

    refused: list[Exception] = []
    client = PeekApiClient(
        {
            "on_error": refused.append,
            "api_key": "any-key",
            "endpoint": f"http://127.0.0.1:{serve.port}/v1/events",
            "storage_path": str(tmp_path / "peekapi-sdk.jsonl"),
            "flush_interval": 60.0,
        }
    )
    try:
        app = Flask(__name__)

        @app.get("/users/<uid>")
        def user(uid: str) -> dict[str, str]:
            return {"uid": uid}

        @app.post("/orders")
        def order() -> tuple[dict[str, bool], int]:
            return {"created": True}, 201

        app.wsgi_app = PeekApiWSGI(app.wsgi_app, client=client)  # type: ignore[method-assign]
        web = app.test_client()
        assert web.get("/users/1").status_code == 200
        assert web.get("/users/2", headers={"x-api-key": "consumer-key"}).status_code == 200
        assert web.post("/orders", json={"n": 1}).status_code == 201
        client.track(
            {"method": "GET", "path": "/api/users", "status_code": 200, "response_time_ms": 42}
        )
    finally:
        client.shutdown()  # sends what is buffered, synchronously

    assert refused == []
    stored = rows(serve.db)
    assert [(r["method"], r["path"], r["status_code"]) for r in stored] == [
        ("GET", "/users/1", 200),
        ("GET", "/users/2", 200),
        ("POST", "/orders", 201),
        ("GET", "/api/users", 200),
    ]
    assert stored[1]["consumer_id"] == "consumer-key"  # the SDK sends an x-api-key raw
    assert stored[0]["consumer_id"] is None
    tracked = stored[-1]
    assert (tracked["request_size"], tracked["response_size"]) == (0, 0)
    assert (tracked["consumer_id"], tracked["metadata"]) == (None, None)
    assert tracked["response_time_ms"] == 42.0
    assert summary(serve)["totals"]["requests"] == len(stored)
    # Nothing was left behind in the SDK's own disk buffer.
    assert not (tmp_path / "peekapi-sdk.jsonl").exists()


def shown_endpoint(event: dict[str, Any]) -> tuple[str, str]:
    """The dashboard's row for an event: unmatched requests (a 404 or 405 whose path is
    no route template) are grouped per method and status."""
    path, status = event["path"], event["status_code"]
    if status in (404, 405) and not any(mark in path for mark in ("{", "<", "/:")):
        return event["method"], f"unmatched ({status})"
    return event["method"], path


def summary(serve: Ingest) -> Any:
    url = f"http://127.0.0.1:{serve.port}/api/summary"
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.loads(reply.read())
