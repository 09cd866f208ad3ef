"""What every test app serves, and the secrets the scenarios send.

Endpoints (the same in every app):

- ``GET|HEAD /json``: 200, ``JSON_BODY``, plus ``Set-Cookie: sid=<SET_COOKIE_SECRET>``
- ``POST /items``: 201, echoes the JSON body as ``{"created": <body>}``
- ``GET /items/<int>``: 200, ``{"item_id": <int>}`` (the route with a path parameter)
- ``GET /boom``: the handler raises
- ``PURGE /purge``: 200, ``{"purged": true}`` (an unknown HTTP method)
- ``GET /stream``: a streamed ``text/plain`` body of ``STREAM_CHUNKS``
- anything else: 404
"""

from __future__ import annotations

import json
from typing import Final

API_KEY_SECRET: Final = "sk-live-RAWKEY-5b1d9c"
TOKEN_SECRET: Final = "Bearer tok-RAWTOKEN-77e0aa"
COOKIE_SECRET: Final = "session=sess-RAWCOOKIE-0c4f"
SET_COOKIE_SECRET: Final = "set-RAWSETCOOKIE-9a2b"
SECRETS: Final = (
    "RAWKEY",
    "RAWTOKEN",
    "RAWCOOKIE",
    "RAWSETCOOKIE",
    API_KEY_SECRET,
    TOKEN_SECRET,
    COOKIE_SECRET,
    SET_COOKIE_SECRET,
)

JSON_BODY: Final = {"hello": "world", "n": 1}
STREAM_CHUNKS: Final = (b"chunk-0\n", b"chunk-1\n", b"chunk-2\n")


def dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
