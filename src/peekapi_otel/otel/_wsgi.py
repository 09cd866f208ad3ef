"""Request and response hooks for the WSGI, Flask and Django instrumentations: the
consumer and both body sizes."""

from __future__ import annotations

import functools
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
from peekapi_otel.otel._wsgi_body import (
    RequestBody,
    count_held_response,
    count_request_body,
    has_unannounced_body,
)

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
        if not size and has_unannounced_body(environ):
            count_request_body(span, environ)  # no Content-Length: count what is read
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


def flask_request_hook(span: Span, environ: dict[str, Any]) -> None:
    try:
        wsgi_request_hook(span, environ)
        if span.is_recording() and environ.get("REQUEST_METHOD") != "HEAD":
            # Called from Flask's before_request, inside the request context.
            from flask import after_this_request

            after_this_request(functools.partial(_count_flask_body, span))
    except Exception as exc:  # noqa: BLE001 - never into the app; counted
        report(exc)


def _count_flask_body(span: Span, response: Any) -> Any:
    """A streamed body (a generator, say) is counted as the server writes it; the
    span, which Flask ends before that, stays open until the body is done. A body the
    server sends itself (``send_file``: direct passthrough) has its Content-Length."""
    try:
        if response.is_streamed and not response.direct_passthrough:
            response.response = count_held_response(span, response.response, encode=True)
    except Exception as exc:  # noqa: BLE001 - never into the app; counted
        report(exc)
    return response


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
        meta = getattr(request, "META", {})
        wsgi_request_hook(span, meta)
        if span.is_recording() and has_unannounced_body(meta):
            # Django read ``wsgi.input`` into its own stream when it built the request
            # (under WSGI limited to the Content-Length, so a chunked body reads as
            # empty; under ASGI the whole body): count what the app reads from that.
            stream = getattr(request, "_stream", None)
            if stream is not None and type(stream) is not RequestBody:
                request._stream = RequestBody(stream, span)
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
            if not getattr(response, "is_async", False) and (
                getattr(response, "file_to_stream", None) is None
            ):
                # Counted as the server writes it, the span held open until then. (A
                # file the server sends itself, and an async iterator, keep their
                # Content-Length.)
                response.streaming_content = count_held_response(span, response.streaming_content)
        else:
            size = len(response.content)
        if size is not None:
            _set_response_size(span, size)
