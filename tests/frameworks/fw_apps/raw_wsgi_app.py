"""A plain WSGI callable with no framework (no route: events carry the raw path)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fw_apps.common import JSON_BODY, SET_COOKIE_SECRET, STREAM_CHUNKS, dumps

StartResponse = Callable[..., Any]


def _reply(
    start_response: StartResponse, status: str, body: bytes, extra: list[tuple[str, str]]
) -> list[bytes]:
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra]
    start_response(status, headers)
    return [body]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path, method = environ.get("PATH_INFO", "/"), environ["REQUEST_METHOD"]
    if path == "/json" and method in ("GET", "HEAD"):
        cookie = [("Set-Cookie", f"sid={SET_COOKIE_SECRET}")]
        body = b"" if method == "HEAD" else dumps(JSON_BODY)
        return _reply(start_response, "200 OK", body, cookie)
    if path == "/items" and method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        received = json.loads(environ["wsgi.input"].read(length))
        return _reply(start_response, "201 Created", dumps({"created": received}), [])
    if path.startswith("/items/") and path[7:].isdigit():
        return _reply(start_response, "200 OK", dumps({"item_id": int(path[7:])}), [])
    if path == "/boom":
        raise RuntimeError("boom from the handler")
    if path == "/purge" and method == "PURGE":
        return _reply(start_response, "200 OK", dumps({"purged": True}), [])
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def chunks() -> Iterator[bytes]:
            yield from STREAM_CHUNKS

        return chunks()
    return _reply(start_response, "404 Not Found", dumps({"detail": "Not Found"}), [])


def server_errors(inner: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """What a WSGI server does with an app that raises: answer 500."""

    def wrapper(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            return inner(environ, start_response)
        except Exception:  # noqa: BLE001 - the server turns it into a 500
            body = b"Internal Server Error"
            start_response(
                "500 Internal Server Error",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]

    return wrapper
