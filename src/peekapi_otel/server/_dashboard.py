"""The dashboard served at ``/``: one self-contained page (``dashboard.html``).

It polls the view it shows (``/api/summary``, ``/api/endpoint`` or ``/api/consumer``) and
``/api/alerts``, and receives new requests pushed over ``/api/stream`` (EventSource). The
view, range and filters live in the query string, so every view is a link.

Numbers are rendered in fixed formats (latency ``123.45`` ms, error rate ``12.5%``) so
they can be compared with ``peekapi-otel report`` and checked by tests. Event data is
only ever inserted with ``textContent``: paths and consumer ids come from the network.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources
from typing import Final

REFRESH_MS: Final = 2000

# The page is a file of its own (HTML, CSS and script in one, no build step); the
# refresh interval is filled in once here.
PAGE: Final = (
    resources.files("peekapi_otel.server")
    .joinpath("dashboard.html")
    .read_text(encoding="utf-8")
    .replace("{{refresh_ms}}", str(REFRESH_MS))
)


def _inline_hash(tag: str) -> str:
    match = re.search(rf"<{tag}>(.*?)</{tag}>", PAGE, re.DOTALL)
    assert match is not None, tag
    digest = hashlib.sha256(match.group(1).encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


CSP: Final = (
    "default-src 'none'; "
    f"script-src {_inline_hash('script')}; "
    f"style-src {_inline_hash('style')}; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""The page's Content-Security-Policy: only its own inline script and style may run."""
