"""Which ingest endpoints peekapi-otel sends to, and URLs masked for messages.

An endpoint must be ``https://``, or plain ``http://`` to loopback only; private,
link-local, reserved and cloud-metadata addresses are refused (SPEC section 5), and no
message ever shows a URL's user-info.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final
from urllib.parse import urlsplit

# Literal addresses an ingest may never be: private, link-local (cloud metadata),
# reserved and unspecified ranges. Loopback is allowed separately (plain HTTP too).
_REFUSED_NETWORKS: Final = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::ffff:0:0/96",
        "64:ff9b::/96",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)
_METADATA_HOSTS: Final = frozenset({"metadata.google.internal", "metadata", "instance-data"})


class ConfigurationError(ValueError):
    """Raised for an invalid explicit argument."""


def _is_loopback_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# scheme://user:password@host: everything up to the last "@" before the path is user-info.
_USERINFO: Final = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.-]*:)?//)?[^/?#]*@")


def mask_url(url: str) -> str:
    """``url`` with any user-info replaced by ``***``, for messages and logs."""
    return _USERINFO.sub(lambda m: (m.group(1) or "") + "***@", url)


def _missing_scheme(url: str) -> str | None:
    """The refusal message when ``url`` has no ``scheme://`` at all, else ``None``."""
    if "://" in url:
        return None
    scheme, colon, rest = url.partition(":")
    if colon and scheme.lower() in ("http", "https"):
        fixed = f"{scheme.lower()}://{rest.lstrip('/')}"
        return (
            f"endpoint {mask_url(url)!r} is missing '//' after the scheme: "
            f"write it as {mask_url(fixed)!r}"
        )
    # "localhost:8787/v1/events" parses as scheme "localhost"; "127.0.0.1:8787/..." as a
    # path: read it again as a scheme-less host:port/path to suggest the right fix.
    host = urlsplit("//" + url).hostname or ""
    scheme = "http" if _is_loopback_host(host) else "https"
    hint = " (plain http is allowed to loopback only)" if scheme == "http" else ""
    return (
        f"endpoint {mask_url(url)!r} has no scheme: write it as "
        f"{mask_url(scheme + '://' + url)!r}{hint}"
    )


def validate_endpoint(url: str) -> str:
    """Return ``url`` if it is an acceptable ingest endpoint, else raise ``ValueError``.

    Messages never contain the URL's user-info, so a password put there is not echoed.
    """
    if not url:
        raise ConfigurationError("endpoint is empty")
    shown = mask_url(url)
    missing = _missing_scheme(url)
    if missing is not None:
        raise ConfigurationError(missing)
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        reason = str(exc).replace(url, shown)
        raise ConfigurationError(f"endpoint {shown!r} is not a valid URL: {reason}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigurationError(f"endpoint {shown!r} must use https:// (got {parts.scheme!r})")
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            f"endpoint {shown!r} must not contain user-info (user:password@); "
            "the API key goes in PEEKAPI_API_KEY"
        )
    if not host:
        raise ConfigurationError(f"endpoint {shown!r} has no host")
    loopback = _is_loopback_host(host)
    if parts.scheme == "http" and not loopback:
        raise ConfigurationError(
            f"endpoint {shown!r} uses plain http; only https is allowed except to "
            "localhost, 127.0.0.0/8 and ::1"
        )
    if host.lower() in _METADATA_HOSTS:
        raise ConfigurationError(f"endpoint host {host!r} is a cloud metadata service")
    if not loopback:
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            addr = None
        if addr is not None and any(addr in net for net in _REFUSED_NETWORKS):
            raise ConfigurationError(
                f"endpoint address {host} is private, link-local, reserved or a metadata "
                "address; PeekAPI refuses to send there"
            )
    return url
