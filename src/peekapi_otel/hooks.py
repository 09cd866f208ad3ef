"""What the HTTP instrumentations leave out: the consumer and the body sizes.

The OpenTelemetry HTTP instrumentations record no body sizes on spans and see the
credentials only through opt-in header capture (OTEL-FACTS Q1, Q3). The code here reads
the raw request once, hashes the consumer credential and counts bytes; it sets only
``peekapi.*`` attributes, in one write per request and one per response.

* ASGI (FastAPI, Starlette, a raw ``OpenTelemetryMiddleware``): nothing to pass. Every
  ``OpenTelemetryMiddleware`` created after a PeekAPI processor wraps its app in a small
  counting layer.
* WSGI, Flask, Django: request/response hooks. Under ``opentelemetry-instrument`` the
  PeekAPI distro passes them itself; in code::

      FlaskInstrumentor().instrument_app(app, **hooks.instrumentor_kwargs("flask"))
      OpenTelemetryMiddleware(wsgi_app, **hooks.instrumentor_kwargs("wsgi"))

Pass your own hooks as keyword arguments to ``instrumentor_kwargs`` and both run (yours
second).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.trace import Span

from peekapi_otel._context import CONTEXT_GET, SDK_SPAN, SPAN_KEY, current_recording_span
from peekapi_otel._events import (
    ATTR_CONSUMER,
    ATTR_METHOD,
    ATTR_PATH,
    ATTR_QUERY,
    ATTR_REQUEST_SIZE,
    ATTR_RESPONSE_SIZE,
    hash_consumer,
    identify,
)
from peekapi_otel._guard import guard, report
from peekapi_otel._options import ConsumerIdentifier

__all__ = ["instrumentor_kwargs"]

_logger = logging.getLogger(__name__)

_STANDARD_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
#: HTTP versions whose request body must be announced by a header (HTTP/2 and 3 frame
#: bodies without one).
_BODY_NEEDS_FRAMING: Final = frozenset({"1.0", "1.1"})
_FRAMING: Final = frozenset({b"content-length", b"transfer-encoding"})


class _Config:
    """Set by the active :class:`PeekApiSpanProcessor`; read by the hooks."""

    consumer_headers: tuple[str, ...] = ("x-api-key", "authorization")
    #: Lower-case request header names the ASGI layer looks at, and each consumer
    #: header's rank (the first configured header present wins).
    rank: dict[bytes, int] = {b"x-api-key": 0, b"authorization": 1}
    interesting: frozenset[bytes] = frozenset(
        (b"content-length", b"transfer-encoding", b"x-api-key", b"authorization")
    )
    environ_keys: tuple[str, ...] = ("HTTP_X_API_KEY", "HTTP_AUTHORIZATION")
    identify_consumer: ConsumerIdentifier | None = None
    #: Set by the distro when no trace exporter is configured: an OpenTelemetry ASGI
    #: middleware built without an explicit ``exclude_spans`` leaves out its per-message
    #: ``http send``/``http receive`` spans, which nobody could see.
    cut_message_spans = False


def configure_hooks(
    consumer_headers: Sequence[str], identify_consumer: ConsumerIdentifier | None
) -> None:
    _Config.consumer_headers = tuple(consumer_headers)
    ranks: dict[bytes, int] = {}
    for rank, name in enumerate(consumer_headers):
        ranks.setdefault(name.encode("latin-1"), rank)
    _Config.rank = ranks
    _Config.interesting = frozenset(ranks) | _FRAMING
    _Config.environ_keys = tuple("HTTP_" + h.upper().replace("-", "_") for h in consumer_headers)
    _Config.identify_consumer = identify_consumer


def _identify(headers: Callable[[], dict[str, str]]) -> str:
    """Consumer ID from the user's ``identify_consumer`` ('' when there is none)."""
    identify_consumer = _Config.identify_consumer
    if identify_consumer is None:
        return ""
    return identify(identify_consumer, headers()) or ""


def _has_plain_dict() -> bool:
    try:
        probe = BoundedAttributes(immutable=False)
        return isinstance(probe._dict, dict) and all(
            hasattr(probe, name) for name in ("_lock", "_immutable", "maxlen", "max_value_len")
        )
    except Exception:  # noqa: BLE001 - another SDK: the public setter is used instead
        return False


_DIRECT: Final = _has_plain_dict()


def _put(span: Span, attrs: dict[str, Any]) -> dict[str, Any] | None:
    """Add our attributes to a live span; the span's own dict when they went straight
    into it (else ``None``).

    ``set_attributes`` takes the span's lock and validates and copies every value, which
    costs several microseconds per call. Ours are plain str/int that need none of it, so
    on the SDK's container they go straight into its dict (under its lock) whenever the
    result is the same: the span is live and no limit applies. (A ``peekapi.*`` key
    that is there already keeps its place instead of moving to the end.)
    """
    bounded = getattr(span, "_attributes", None)
    if _DIRECT and isinstance(bounded, BoundedAttributes):
        raw = bounded._dict
        maxlen = bounded.maxlen
        if (
            not bounded._immutable
            and bounded.max_value_len is None
            and (maxlen is None or len(raw) + len(attrs) <= maxlen)
        ):
            with bounded._lock:
                raw.update(attrs)
            return raw
    span.set_attributes(attrs)
    return None


# --- ASGI (FastAPI, Starlette, raw OpenTelemetryMiddleware) -------------------------
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
    own awaitable, the span is read straight from the context variable, and the scope is
    read in one place.
    """

    __slots__ = ("app",)

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        if scope.get("type") == "http":
            try:
                span: Any = None
                if CONTEXT_GET is not None:
                    span = CONTEXT_GET().get(SPAN_KEY)
                if type(span) is not SDK_SPAN or span._end_time is not None:
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
        interesting = _Config.interesting
        rank = _Config.rank
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
        if _Config.identify_consumer is None:
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
        request.raw = _put(span, attrs)
        return request


_ASGI_PATCHED: Final = "_peekapi_counting"


def install_asgi_counter() -> bool:
    """Make every OpenTelemetryMiddleware created from now on count with _CountingASGI
    (and leave out the per-message spans when ``_Config.cut_message_spans`` says so)."""
    try:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    except ImportError:
        return False
    if getattr(OpenTelemetryMiddleware, _ASGI_PATCHED, False):
        return True
    original = OpenTelemetryMiddleware.__init__
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self: Any, app: Any, *args: Any, **kwargs: Any) -> None:
        original(self, app, *args, **kwargs)
        with guard:
            if not isinstance(self.app, _CountingASGI):
                self.app = _CountingASGI(self.app)
            if _Config.cut_message_spans and (
                "exclude_spans" not in signature.bind(self, app, *args, **kwargs).arguments
            ):
                self.exclude_receive_span = self.exclude_send_span = True

    OpenTelemetryMiddleware.__init__ = __init__  # type: ignore[method-assign]
    setattr(OpenTelemetryMiddleware, _ASGI_PATCHED, True)
    return True


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
    raw = getattr(getattr(span, "_attributes", None), "_dict", None)
    attrs = raw if type(raw) is dict else getattr(span, "attributes", None) or {}
    return "HEAD" in (attrs.get("http.request.method"), attrs.get("http.method"))


def _set_response_size(span: Span, size: int) -> None:
    """The request hook put a 0 on the live span: store the size over it in the span's
    own dict (the key is there, so the dict does not grow), else through :func:`_put`."""
    sdk: Any = span  # the SDK's span type is checked first
    if type(sdk) is SDK_SPAN and sdk._end_time is None and _DIRECT:
        raw = sdk._attributes._dict
        if ATTR_RESPONSE_SIZE in raw:
            raw[ATTR_RESPONSE_SIZE] = size
            return
    _put(span, {ATTR_RESPONSE_SIZE: size})


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
        if _Config.identify_consumer is None:
            raw = None
            for key in _Config.environ_keys:  # the first configured header set wins
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
        _put(span, attrs)
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


_HOOKS: Final[dict[str, dict[str, Callable[..., None]]]] = {
    "asgi": {},  # see _CountingASGI
    "wsgi": {"request_hook": wsgi_request_hook, "response_hook": wsgi_response_hook},
    "flask": {"request_hook": wsgi_request_hook, "response_hook": flask_response_hook},
    "django": {"request_hook": django_request_hook, "response_hook": django_response_hook},
}
_HOOKS["fastapi"] = _HOOKS["starlette"] = _HOOKS["asgi"]


def _chain(ours: Callable[..., None], theirs: Callable[..., Any]) -> Callable[..., None]:
    def both(*args: Any) -> None:
        ours(*args)
        theirs(*args)

    both.__name__ = getattr(theirs, "__name__", "hook")
    return both


def instrumentor_kwargs(framework: str, **user_hooks: Callable[..., Any] | None) -> dict[str, Any]:
    """Keyword arguments that add the PeekAPI hooks to an instrumentor or middleware.

    Args:
        framework: ``fastapi``, ``starlette``, ``asgi``, ``flask``, ``wsgi`` or ``django``.
        user_hooks: your own hooks under the instrumentation's names; they run after ours.
    """
    try:
        ours = _HOOKS[framework]
    except KeyError:
        raise ValueError(
            f"unknown framework {framework!r}; expected one of {', '.join(sorted(_HOOKS))}"
        ) from None
    kwargs: dict[str, Any] = dict(ours)
    for name, hook in user_hooks.items():
        if hook is None:
            continue
        if name in ours:
            kwargs[name] = _chain(ours[name], hook)
        else:
            kwargs[name] = hook
    return kwargs
