"""The ASGI counting layer: the consumer and both body sizes for every
OpenTelemetry ASGI middleware (FastAPI, Starlette, a raw ``OpenTelemetryMiddleware``)."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any

from opentelemetry.trace import Span

from peekapi_otel._schema import ATTR_CONSUMER, ATTR_METHOD, ATTR_REQUEST_SIZE, ATTR_RESPONSE_SIZE
from peekapi_otel.core._guard import guard, report
from peekapi_otel.core._hashing import hash_consumer
from peekapi_otel.otel import _sdk
from peekapi_otel.otel._request_attrs import _BODY_NEEDS_FRAMING, _STANDARD_METHODS, _identify
from peekapi_otel.otel._sdk import current_recording_span, put_attributes
from peekapi_otel.otel._state import STATE

#
# ASGI needs no hooks: the OTel ASGI middleware offers no hook that sees response bodies
# unless it also makes a span per send/receive message (costly, and excluded by the
# zero-code path when no trace exporter is set). Instead every OpenTelemetryMiddleware
# created after a PeekAPI processor wraps its app in _CountingASGI, which reads the
# consumer from the scope and counts the bytes that really pass.


def _asgi_headers(scope: Mapping[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or ()}


class _AsgiRequest:
    """One request's byte counts.

    The consumer, the method and both sizes go on the server span when the request
    starts; each body message then updates its size in the span's own dict (one store,
    no lock: the key is there already, so the dict does not grow). So nothing is left to
    do when the app ends, whichever way it ends, and the layer needs no coroutine of its
    own.
    """

    __slots__ = ("done", "head", "raw", "read", "sent", "span", "upstream_receive", "upstream_send")

    done: bool
    head: bool
    #: The span's attribute dict, when our attributes went straight into it.
    raw: dict[str, Any] | None
    read: int
    sent: int
    span: Span
    upstream_receive: Any
    upstream_send: Any

    def _update(self, key: str, value: int) -> None:
        raw = self.raw
        if raw is not None and key in raw:
            raw[key] = value
        else:  # limits apply, or a limit pushed our key out: the SDK's setter decides
            self.span.set_attribute(key, value)

    async def receive(self) -> Any:
        message = await self.upstream_receive()
        try:
            if not self.done and message.get("type") == "http.request":
                body = message.get("body")
                if body:
                    self.read += len(body)
                    self._update(ATTR_REQUEST_SIZE, self.read)
        except Exception as exc:  # noqa: BLE001 - never into the app; counted
            report(exc)
        return message

    def send(self, message: Any) -> Awaitable[None]:
        # A plain function handing back the upstream awaitable: one coroutine less per
        # message than an ``async def`` wrapper.
        try:
            if not self.done and message.get("type") == "http.response.body":
                if not message.get("more_body", False):
                    # The middleware ends the span after the last chunk: nothing after
                    # it is counted.
                    self.done = True
                body = message.get("body")
                if body and not self.head:
                    self.sent += len(body)
                    # _update(), written out: this runs for every body message.
                    raw = self.raw
                    if raw is not None and ATTR_RESPONSE_SIZE in raw:
                        raw[ATTR_RESPONSE_SIZE] = self.sent
                    else:
                        self.span.set_attribute(ATTR_RESPONSE_SIZE, self.sent)
        except Exception as exc:  # noqa: BLE001 - never into the app; counted
            report(exc)
        return self.upstream_send(message)  # type: ignore[no-any-return]


_new_request = object.__new__


class _CountingASGI:
    """Sits inside OpenTelemetryMiddleware, where the server span is the current span.

    This runs for every request between two requests' worth of OpenTelemetry code, so
    each Python call it saves shows: it is a plain function that hands back the app's
    own awaitable, and the scope is read in one place.
    """

    __slots__ = ("app",)

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        if scope.get("type") == "http":
            try:
                span = current_recording_span()
                if span is not None:
                    request = self._start(span, scope, send)
                    send = request.send
                    if request.read >= 0:  # no Content-Length: count what the app reads
                        request.upstream_receive = receive
                        receive = request.receive
            except Exception as exc:  # noqa: BLE001 - never into the app; counted
                report(exc)
        return self.app(scope, receive, send)  # type: ignore[no-any-return]  # untyped app

    @staticmethod
    def _start(span: Span, scope: dict[str, Any], send: Any) -> _AsgiRequest:
        """Puts the consumer, the method and the sizes known so far on the span."""
        rule = STATE.rule
        interesting = rule.interesting
        rank = rule.rank
        content_length: int | None = None
        chunked = False
        raw: bytes | None = None
        raw_rank = len(rank)
        for key, value in scope.get("headers") or ():
            if key not in interesting:
                # ASGI servers send lower-case names; anything else is lowered first.
                if key.islower():
                    continue
                key = key.lower()
                if key not in interesting:
                    continue
            if key == b"content-length":
                try:
                    content_length = int(value)
                except ValueError:
                    pass
            elif key == b"transfer-encoding":
                chunked = True
            elif value and rank[key] < raw_rank:  # an empty header is no credential
                raw_rank = rank[key]
                raw = value
        request = _new_request(_AsgiRequest)
        attrs: dict[str, Any] = {ATTR_REQUEST_SIZE: 0, ATTR_RESPONSE_SIZE: 0}
        if content_length is not None:
            attrs[ATTR_REQUEST_SIZE] = content_length
            request.read = -1
        elif not chunked and scope.get("http_version", "1.1") in _BODY_NEEDS_FRAMING:
            # HTTP/1.x: no Content-Length and no Transfer-Encoding means no body
            # (RFC 9112 6.3), so there is nothing to count on the way in.
            request.read = -1
        else:
            request.read = 0
        if rule.identify_consumer is None:
            if raw:
                attrs[ATTR_CONSUMER] = hash_consumer(raw.decode("latin-1"))
        else:
            consumer = _identify(lambda: _asgi_headers(scope))
            if consumer:
                attrs[ATTR_CONSUMER] = consumer
        method = scope.get("method")
        if method not in _STANDARD_METHODS:
            method = str(method or "").upper()
            if method not in _STANDARD_METHODS:
                attrs[ATTR_METHOD] = method
        request.span = span
        request.upstream_send = send
        request.head = method == "HEAD"
        request.sent = 0
        request.done = False
        request.raw = put_attributes(span, attrs)
        return request


def _count_in(middleware: Any, exclude_spans_given: bool) -> None:
    with guard:
        if not isinstance(middleware.app, _CountingASGI):
            middleware.app = _CountingASGI(middleware.app)
        if STATE.cut_message_spans and not exclude_spans_given:
            _sdk.exclude_message_spans(middleware)


def install_asgi_counter() -> bool:
    """Make every OpenTelemetryMiddleware created from now on count with _CountingASGI
    (and leave out the per-message spans when ``STATE.cut_message_spans`` says so).
    A patch of the middleware's ``__init__``, undone by the process-state reset."""
    return _sdk.patch_asgi_middleware(_count_in)
