"""The wire schema: what :func:`event_problem` accepts and refuses, from the one table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from peekapi_otel._schema import (
    FIELD_NAMES,
    MAX_CONSUMER,
    MAX_INT,
    MAX_METHOD,
    MAX_PATH,
    REQUIRED_FIELDS,
    WIRE_FIELDS,
    event_problem,
    with_defaults,
)

FIXTURES = Path(__file__).parent / "cli" / "fixtures"

EVENT: dict[str, Any] = {
    "method": "GET",
    "path": "/items/{item_id}",
    "status_code": 200,
    "response_time_ms": 12.35,
    "request_size": 0,
    "response_size": 17,
    "consumer_id": "hash_0123456789ab",
    "metadata": {"trace_id": "0" * 32, "span_id": "0" * 16},
    "timestamp": "2026-12-03T06:39:35.171464+00:00",
}


def test_the_table() -> None:
    assert tuple(EVENT) == FIELD_NAMES
    assert {"method", "path", "status_code", "response_time_ms", "timestamp"} == REQUIRED_FIELDS
    assert {f.name: f.limit for f in WIRE_FIELDS if f.limit} == {
        "method": MAX_METHOD,
        "path": MAX_PATH,
        "consumer_id": MAX_CONSUMER,
        "timestamp": 64,
    }


def test_a_whole_event_is_valid() -> None:
    assert event_problem(EVENT) is None
    assert with_defaults(EVENT) == EVENT


@pytest.mark.parametrize("name", sorted(set(FIELD_NAMES) - REQUIRED_FIELDS))
def test_an_optional_field_may_be_left_out_and_stands_for_its_default(name: str) -> None:
    event = {k: v for k, v in EVENT.items() if k != name}
    assert event_problem(event) is None
    assert with_defaults(event)[name] == {"request_size": 0, "response_size": 0}.get(name)
    assert tuple(with_defaults(event)) == FIELD_NAMES


@pytest.mark.parametrize("name", sorted(REQUIRED_FIELDS))
def test_a_required_field_may_not(name: str) -> None:
    event = {k: v for k, v in EVENT.items() if k != name}
    assert event_problem(event) == f"missing field {name}"


def test_unknown_fields_are_ignored_and_not_kept() -> None:
    assert event_problem({**EVENT, "environment": "prod"}) is None
    assert "environment" not in with_defaults({**EVENT, "environment": "prod"})


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"method": 1}, "method must be a string"),
        ({"method": "X" * (MAX_METHOD + 1)}, "method is longer than 16 characters"),
        ({"path": None}, "path must not be null"),
        ({"path": "/" * (MAX_PATH + 1)}, "path is longer than 2048 characters"),
        ({"status_code": "200"}, "status_code must be an integer"),
        ({"status_code": True}, "status_code must be an integer"),
        ({"status_code": 200.0}, "status_code must be an integer"),
        ({"status_code": MAX_INT + 1}, f"status_code must be <= {MAX_INT}"),
        ({"response_time_ms": "1"}, "response_time_ms must be a finite number"),
        ({"response_time_ms": float("nan")}, "response_time_ms must be a finite number"),
        ({"response_time_ms": float("inf")}, "response_time_ms must be a finite number"),
        ({"response_time_ms": -0.5}, "response_time_ms must be >= 0"),
        ({"request_size": -1}, "request_size must be >= 0"),
        ({"response_size": 1.5}, "response_size must be an integer"),
        ({"consumer_id": 7}, "consumer_id must be a string"),
        ({"consumer_id": "c" * (MAX_CONSUMER + 1)}, "consumer_id is longer than 256 characters"),
        ({"metadata": []}, "metadata must be an object or null"),
        ({"timestamp": 0}, "timestamp must be a string"),
    ],
)
def test_wrong_values_are_named(change: dict[str, Any], reason: str) -> None:
    assert event_problem({**EVENT, **change}) == reason


@pytest.mark.parametrize("value", [{"foo": 1}, [], "event", 1, None])
def test_a_value_that_is_not_an_event(value: object) -> None:
    assert event_problem(value) in ("must be an object", "missing field method")


def test_nullable_fields_take_null_and_a_null_size_is_0() -> None:
    event = {**EVENT, "consumer_id": None, "metadata": None, "request_size": None}
    assert event_problem(event) is None
    assert with_defaults(event) == {**event, "request_size": 0}


@pytest.mark.parametrize("batch", sorted(FIXTURES.glob("peekapi-*-batch.json")))
def test_every_event_the_official_sdks_sent_is_valid(batch: Path) -> None:
    events = json.loads(batch.read_text())["body"]
    assert events
    assert [event_problem(e) for e in events] == [None] * len(events)
