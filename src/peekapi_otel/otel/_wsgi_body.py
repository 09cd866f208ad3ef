"""Counting WSGI bodies as they pass, without buffering them: the request body the app
reads when no Content-Length announced it, and a streamed response body as the server
writes it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from opentelemetry.trace import Span, Status, StatusCode, get_current_span

from peekapi_otel._schema import ATTR_REQUEST_SIZE, ATTR_RESPONSE_SIZE
from peekapi_otel.core._guard import report
from peekapi_otel.otel._request_attrs import _BODY_NEEDS_FRAMING
from peekapi_otel.otel._sdk import hold_span_end, install_wsgi_counter, put_attributes


def _store(span: Span, key: str, size: int) -> None:
    if span.is_recording():  # once the span has ended its event is made
        put_attributes(span, {key: size})


# --- request -------------------------------------------------------------------------


def has_unannounced_body(environ: Mapping[str, Any]) -> bool:
    """A body may follow that no Content-Length announced: chunked, or a protocol that
    frames bodies itself (HTTP/1.x without either header has no body, RFC 9112 6.3)."""
    if environ.get("CONTENT_LENGTH"):
        return False
    if environ.get("HTTP_TRANSFER_ENCODING"):
        return True
    protocol = str(environ.get("SERVER_PROTOCOL") or "HTTP/1.1")
    return protocol.removeprefix("HTTP/") not in _BODY_NEEDS_FRAMING


class RequestBody:
    """``wsgi.input`` (or Django's request stream) that counts what the app reads.

    ``read``, ``readline``, ``readlines`` and iteration are counted; anything else the
    server's stream offers is passed through untouched.
    """

    __slots__ = ("_read", "_span", "_stream")

    def __init__(self, stream: Any, span: Span) -> None:
        self._stream = stream
        self._span = span
        self._read = 0

    def _add(self, size: int) -> None:
        if size:
            try:
                self._read += size
                _store(self._span, ATTR_REQUEST_SIZE, self._read)
            except Exception as exc:  # noqa: BLE001 - never into the app; counted
                report(exc)

    def read(self, *args: Any) -> Any:
        data = self._stream.read(*args)
        self._add(len(data))
        return data

    def readline(self, *args: Any) -> Any:
        line = self._stream.readline(*args)
        self._add(len(line))
        return line

    def readlines(self, *args: Any) -> Any:
        lines = self._stream.readlines(*args)
        self._add(sum(map(len, lines)))
        return lines

    def __iter__(self) -> RequestBody:
        return self

    def __next__(self) -> Any:
        line = next(self._stream)
        self._add(len(line))
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def count_request_body(span: Span, environ: Mapping[str, Any]) -> None:
    """Count what the app reads from ``wsgi.input`` (the caller checked that no
    Content-Length gave the size)."""
    stream = environ.get("wsgi.input")
    if stream is not None and type(stream) is not RequestBody and isinstance(environ, dict):
        environ["wsgi.input"] = RequestBody(stream, span)


# --- response ------------------------------------------------------------------------


class ResponseBody:
    """A response iterable that counts the bytes the server has written.

    A chunk counts once the server asks for the next one (or for the end): a server
    that fails to write a chunk, because the client went away, closes the body instead,
    and that chunk is not counted. If the app's iterator raises, what was written so far
    stands and the span is marked as failed. The size goes on the span when the body is
    done (exhausted, closed, or dropped unclosed), before the span ends: the WSGI
    middleware ends it when the body is closed, and for Flask and Django ``release``
    ends the span that was held open.
    """

    __slots__ = (
        "_body",
        "_chunks",
        "_closed",
        "_done",
        "_encode",
        "_pending",
        "_release",
        "_sent",
        "_span",
    )

    def __init__(
        self,
        body: Iterable[Any],
        span: Span,
        release: Callable[[], None] | None = None,
        *,
        encode: bool = False,
    ) -> None:
        self._body = body
        self._chunks = iter(body)
        self._span = span
        self._release = release
        #: Flask bodies may yield ``str``; Werkzeug sends them UTF-8 encoded.
        self._encode = encode
        self._sent = 0
        self._pending = 0
        self._done = False
        self._closed = False

    def __iter__(self) -> ResponseBody:
        return self

    def __next__(self) -> Any:
        self._sent += self._pending
        self._pending = 0
        try:
            chunk = next(self._chunks)
        except StopIteration:
            # All written: done, even if the server (or a test client) closes late.
            if not self._done:
                self._finish()
            raise
        except Exception as exc:
            self._failed(exc)
            raise
        if self._encode and isinstance(chunk, str):
            chunk = chunk.encode()
        self._pending = len(chunk)
        return chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            if not self._done:
                self._finish()

    def __del__(self) -> None:
        # A server that drops the body without closing it: the span must still end.
        if not self._done:
            self._finish()

    def _failed(self, exc: Exception) -> None:
        try:
            span = self._span
            if span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        except Exception as error:  # noqa: BLE001 - never into the app; counted
            report(error)

    def _finish(self) -> None:
        self._done = True
        try:
            _store(self._span, ATTR_RESPONSE_SIZE, self._sent)
        except Exception as exc:  # noqa: BLE001 - never into the app; counted
            report(exc)
        release, self._release = self._release, None
        if release is not None:
            try:
                release()
            except Exception as exc:  # noqa: BLE001 - never into the app; counted
                report(exc)


def count_held_response(span: Span, body: Iterable[Any], *, encode: bool = False) -> ResponseBody:
    """``body`` counted, with the span's end held back until the body is done (Flask
    and Django end their span before the server writes a streamed body)."""
    return ResponseBody(body, span, hold_span_end(span), encode=encode)


# --- the WSGI middleware -------------------------------------------------------------


class CountingWSGI:
    """Sits inside the OpenTelemetry WSGI middleware, where its server span is current,
    and counts each streamed response the app returns."""

    __slots__ = ("app",)

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        body = self.app(environ, start_response)
        if type(body) in _SEQUENCES:
            # Not streamed: its Content-Length says the size (servers such as wsgiref
            # derive one from a one-item list, so it goes to the server as it is).
            return body
        try:
            if environ.get("REQUEST_METHOD") == "HEAD":
                return body  # no body on the wire; the response hook says 0
            span = get_current_span()
            if not span.is_recording():
                return body
            file_wrapper = environ.get("wsgi.file_wrapper")
            if isinstance(file_wrapper, type) and isinstance(body, file_wrapper):
                return body  # the server may send it with sendfile(); Content-Length says
            return ResponseBody(body, span)
        except Exception as exc:  # noqa: BLE001 - never into the app; counted
            report(exc)
        return body


_SEQUENCES: Final = (list, tuple)


def install_wsgi_body_counting() -> bool:
    """Count streamed responses in every OpenTelemetry WSGI middleware created from now on."""
    return install_wsgi_counter(_wrap_once)


def _wrap_once(app: Any) -> Any:
    return app if isinstance(app, CountingWSGI) else CountingWSGI(app)
