"""Request and response hooks for the WSGI, Flask and Django instrumentations: the
consumer and both body sizes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.trace import Span

from peekapi_otel._schema import (
    ATTR_CONSUMER,
    ATTR_METHOD,
    ATTR_PATH,
    ATTR_QUERY,
    ATTR_REQUEST_SIZE,
    ATTR_RESPONSE_SIZE,
)
from peekapi_otel.core._guard import guard, report
from peekapi_otel.core._hashing import hash_consumer
from peekapi_otel.otel._request_attrs import _STANDARD_METHODS, _identify
from peekapi_otel.otel._sdk import attributes_of, overwrite_attribute, put_attributes
from peekapi_otel.otel._state import STATE

# --- WSGI (raw OpenTelemetryMiddleware, Flask) --------------------------------------


def _environ_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    headers = {
        k[5:].lower().replace("_", "-"): str(v) for k, v in environ.items() if k.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.lower().replace("_", "-")] = str(environ[key])
    return headers


def _headers_size(headers: Sequence[tuple[str, str]] | None) -> int | None:
    for name, value in headers or ():
        if name.lower() == "content-length":
            try:
                return max(int(value), 0)
            except ValueError:
                return None
    return None


def _is_head(span: Span) -> bool:
    attrs = attributes_of(span)
    return "HEAD" in (attrs.get("http.request.method"), attrs.get("http.method"))


def _set_response_size(span: Span, size: int) -> None:
    """The request hook put a 0 on the live span: store the size over it in the span's
    own dict (the key is there, so the dict does not grow)."""
    overwrite_attribute(span, ATTR_RESPONSE_SIZE, size)


# The hooks run once or twice per request: ``try`` instead of ``with guard:``, and the
# request hook does its work in place (Django's calls it with ``request.META``).


def wsgi_request_hook(span: Span, environ: Mapping[str, Any]) -> None:
    try:
        if not span.is_recording():
            return
        try:
            size = max(int(environ.get("CONTENT_LENGTH") or 0), 0)
        except ValueError:
            size = 0
        # The response size is 0 until the response hook knows better.
        attrs: dict[str, Any] = {ATTR_REQUEST_SIZE: size, ATTR_RESPONSE_SIZE: 0}
        rule = STATE.rule
        if rule.identify_consumer is None:
            raw = None
            for key in rule.environ_keys:  # the first configured header set wins
                raw = environ.get(key)
                if raw:
                    attrs[ATTR_CONSUMER] = hash_consumer(str(raw))
                    break
        else:
            consumer = _identify(lambda: _environ_headers(environ))
            if consumer:
                attrs[ATTR_CONSUMER] = consumer
        if "RAW_URI" not in environ and "REQUEST_URI" not in environ:
            # wsgiref (Django runserver) sets neither, and then the stable semantic
            # conventions put no path on the span at all (OTEL-FACTS Q2).
            attrs[ATTR_PATH] = (environ.get("SCRIPT_NAME") or "") + (
                environ.get("PATH_INFO") or "/"
            )
            attrs[ATTR_QUERY] = environ.get("QUERY_STRING") or ""
        if environ.get("REQUEST_METHOD") not in _STANDARD_METHODS:
            method = str(environ.get("REQUEST_METHOD", "")).upper()
            if method not in _STANDARD_METHODS:
                attrs[ATTR_METHOD] = method
        put_attributes(span, attrs)
    except Exception as exc:  # noqa: BLE001 - never into the app; counted
        report(exc)


def wsgi_response_hook(
    span: Span, environ: dict[str, Any], status: str, headers: list[tuple[str, str]]
) -> None:
    try:
        # A HEAD response has no body on the wire; Content-Length describes the GET body.
        size = 0 if environ.get("REQUEST_METHOD") == "HEAD" else _headers_size(headers)
        if size is not None and span.is_recording():
            _set_response_size(span, size)
    except Exception as exc:  # noqa: BLE001 - never into the app; counted
        report(exc)


def flask_response_hook(span: Span, status: str, headers: list[tuple[str, str]]) -> None:
    try:
        if not span.is_recording():
            return
        size = 0 if _is_head(span) else _headers_size(headers)
        if size is not None:
            _set_response_size(span, size)
    except Exception as exc:  # noqa: BLE001 - never into the app; counted
        report(exc)


# --- Django ---------------------------------------------------------------------------


def django_request_hook(span: Span, request: Any) -> None:
    try:
        wsgi_request_hook(span, getattr(request, "META", {}))
    except Exception as exc:  # noqa: BLE001 - never into the app; counted
        report(exc)


def django_response_hook(span: Span, request: Any, response: Any) -> None:
    with guard:
        if not span.is_recording():
            return
        size: int | None
        if getattr(request, "method", None) == "HEAD":
            size = 0  # no body on the wire, whatever the view returned
        elif getattr(response, "streaming", False):
            size = _headers_size([("content-length", response.get("Content-Length", ""))])
        else:
            size = len(response.content)
        if size is not None:
            _set_response_size(span, size)
