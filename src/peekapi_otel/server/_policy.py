"""Who may talk to the local ingest: browser and DNS-rebinding defences.

- The dashboard and its API answer only when the ``Host`` header names this machine as
  a loopback name, an IP literal, or a name given with ``--allow-host``. A DNS rebinding
  page reaches the server under its own domain name, so its ``Host`` is refused.
- Without an API key any client may post events. A browser page on another site could
  then post too: a form or ``fetch`` with a ``text/plain`` body needs no CORS preflight.
  So posts carrying an ``Origin`` other than the server's own are refused, and so is any
  content type other than ``application/json`` (which a browser can send cross-site only
  after a preflight that this server never approves).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain"})


def _split_host(value: str) -> tuple[str, str]:
    """``("name-or-ip", "port")`` of a Host header value; ``("", "")`` if unparsable."""
    try:
        parts = urlsplit("//" + value.strip())
        return (parts.hostname or "").lower().rstrip("."), str(parts.port or "")
    except ValueError:
        return "", ""


class HostPolicy:
    """The names the dashboard answers to, besides loopback names and IP literals."""

    def __init__(self, bound_host: str, allowed: Iterable[str] = ()) -> None:
        names = {name.strip().lower().rstrip(".") for name in allowed if name.strip()}
        try:
            ipaddress.ip_address(bound_host)
        except ValueError:
            names.add(bound_host.lower())
        self.names: frozenset[str] = frozenset(names)

    def host_allowed(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        name, _port = _split_host(host_header)
        if not name:
            return False
        if name in _LOOPBACK_NAMES or name.endswith(".localhost") or name in self.names:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def cross_site_refusal(
        self, origin: str | None, host_header: str | None, content_type: str | None
    ) -> str | None:
        """Why a post without an API key looks like a browser's cross-site request, or None."""
        if origin is not None:
            try:
                parts = urlsplit(origin.strip())
                own = parts.netloc.lower() == (host_header or "").strip().lower()
            except ValueError:
                own = False
            if not own or parts.scheme not in ("http", "https"):
                return f"cross-site post refused (Origin {origin[:100]!r} is not this server)"
        media_type = (content_type or "").split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            return (
                f"Content-Type must be application/json (got {media_type[:60] or 'none'!r}); "
                "other types are what a cross-site browser post would send"
            )
        return None
