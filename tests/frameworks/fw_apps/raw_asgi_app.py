"""A plain ASGI callable with no framework (no route: events carry the raw path)."""

from __future__ import annotations

import json
from typing import Any

from fw_apps.common import JSON_BODY, SET_COOKIE_SECRET, STREAM_CHUNKS, dumps

Scope = dict[str, Any]


async def _read(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _send(send: Any, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    if path == "/json" and method in ("GET", "HEAD"):
        cookie = [(b"set-cookie", f"sid={SET_COOKIE_SECRET}".encode())]
        await _send(send, 200, b"" if method == "HEAD" else dumps(JSON_BODY), cookie)
    elif path == "/items" and method == "POST":
        await _send(send, 201, dumps({"created": json.loads(await _read(receive))}), [])
    elif path.startswith("/items/") and path[7:].isdigit():
        await _send(send, 200, dumps({"item_id": int(path[7:])}), [])
    elif path == "/boom":
        raise RuntimeError("boom from the handler")
    elif path == "/purge" and method == "PURGE":
        await _send(send, 200, dumps({"purged": True}), [])
    elif path == "/stream":
        start = {"type": "http.response.start", "status": 200}
        await send({**start, "headers": [(b"content-type", b"text/plain")]})
        for chunk in STREAM_CHUNKS:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        await _send(send, 404, dumps({"detail": "Not Found"}), [])
