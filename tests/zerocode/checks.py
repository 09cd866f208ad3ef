"""Assertions shared by the zero-code tests."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from zerocode.support import SECRETS, Sent, json_dumps, unique_events

ROUTES = {
    "fastapi": "/items/{item_id}",
    "flask": "/items/<int:item_id>",
    "django": "/items/<int:item_id>",
    "litestar": "/items/{item_id}",
    "bottle": "/items/<item_id:int>",
    "falcon": "/items/{item_id:int}",
    "falcon_asgi": "/items/{item_id:int}",
    "pyramid": "/items/{item_id:\\d+}",
    "aiohttp": "/items/{item_id}",
    "tornado": "/items/{item_id}",
}


def expected_path(framework: str, path: str) -> str:
    """The route template for ``/items/<n>``; frameworks without a router (Quart as a raw
    ASGI app) keep the raw path."""
    route = ROUTES.get(framework)
    return route if route and path.startswith("/items/") else path


def check_events(events: Sequence[dict[str, Any]], sent: Sequence[Sent], framework: str) -> None:
    """Exactly one event per request, each with route template, consumer and sizes."""
    shown = json_dumps(list(events))
    keys = Counter(
        (e["metadata"]["trace_id"], e["metadata"]["span_id"]) for e in events if e.get("metadata")
    )
    assert all(n == 1 for n in keys.values()), f"an event arrived twice:\n{shown}"
    assert len(unique_events(events)) == len(events) == len(sent), (
        f"{len(sent)} requests but {len(events)} events:\n{shown}"
    )
    remaining = list(events)
    for request in sent:
        path = expected_path(framework, request.path)
        match = [
            e
            for e in remaining
            if e["method"] == request.method
            and e["path"] == path
            and e["status_code"] == request.status
            and e["consumer_id"] == request.consumer
        ]
        assert match, f"no event for {request} (expected path {path!r}):\n{shown}"
        event = match[0]
        remaining.remove(event)
        assert event["request_size"] == request.request_size, (request, event)
        assert event["response_size"] == request.response_size, (request, event)
        assert event["response_time_ms"] >= 0
        assert len(event["metadata"]["trace_id"]) == 32
        assert len(event["metadata"]["span_id"]) == 16
    assert_no_secret(json.dumps(list(events)), "events")


def assert_no_secret(text: str | bytes, where: str) -> None:
    data = text.encode() if isinstance(text, str) else text
    for secret in SECRETS:
        assert secret.encode() not in data, f"raw credential {secret!r} found in {where}"


def count_lines(text: str, needle: str) -> int:
    return sum(1 for line in text.splitlines() if needle in line)
