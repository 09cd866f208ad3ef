"""Tornado: a ``server_request_hook`` for ``opentelemetry-instrumentation-tornado``.

That instrumentation puts no ``http.route`` on the span (its span name and
``tornado.handler`` name the handler or route, depending on its version), so the hook
reports the template of the matched ``URLSpec``: capture groups become ``{name}``, from
the group name or the handler method's parameter names, as Tornado's own instrumentation
names them in its metrics (``r"/items/([0-9]+)"`` with ``get(self, item_id)`` is
``/items/{item_id}``). A pattern that is more than literal text and groups gives no
route, and the event keeps the raw path.

Instrumentations before the semantic-convention opt-in keep the query out of
``http.target`` (the path alone): the hook then adds our own copy of it.

The response size is counted as the handler's connection writes the body. The span of a
request whose handler raised ends before Tornado writes the error page (size 0).
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Final

from opentelemetry.trace import Span

from peekapi_otel.core._guard import report
from peekapi_otel.otel._framework_attrs import (
    content_length,
    put_query_if_missing,
    put_request,
    put_response_size,
    put_route,
)

_NAMED_GROUP: Final = re.compile(r"\(\?P<(\w+)>")
_REGEX_SYNTAX: Final = frozenset(".*+?[]{}|^$")
_MAX_DEPTH: Final = 8


def template_from_pattern(pattern: str, names: list[str]) -> str | None:
    """``/items/{item_id}`` for ``/items/(?P<item_id>[0-9]+)$``; ``None`` when the pattern
    has regex syntax outside its groups."""
    if pattern.startswith("^"):
        pattern = pattern[1:]
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1]
    out: list[str] = []
    depth = 0
    groups = 0
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if depth == 0:
                if i + 1 >= len(pattern) or pattern[i + 1].isalnum():
                    return None  # \d, \w... outside a group
                out.append(pattern[i + 1])
            i += 2
            continue
        if char == "(":
            if depth == 0:
                named = _NAMED_GROUP.match(pattern, i)
                if named:
                    name = named.group(1)
                elif groups < len(names):
                    name = names[groups]
                else:
                    name = str(groups + 1)
                out.append("{" + name + "}")
                groups += 1
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return None
        elif depth == 0:
            if char in _REGEX_SYNTAX:
                return None
            out.append(char)
        i += 1
    return "".join(out) if depth == 0 else None


def _find_rule(router: Any, request: Any, handler_class: type, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        return None
    for rule in getattr(router, "rules", None) or ():
        if rule.matcher.match(request) is None:
            continue
        target = rule.target
        if isinstance(target, type):
            return rule if target is handler_class else None
        if hasattr(target, "rules"):
            found = _find_rule(target, request, handler_class, depth + 1)
            if found is not None:
                return found
            continue
        return None
    return None


def _method_parameters(handler: Any, method: str) -> list[str]:
    func = getattr(handler, method.lower(), None)
    if func is None:
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in inspect.signature(func).parameters.values() if p.kind in kinds]


def route_of(handler: Any) -> str | None:
    """The matched URLSpec's template, or ``None`` (a 404, a custom router)."""
    request = handler.request
    rule = _find_rule(handler.application.default_router, request, type(handler))
    if rule is None:
        return None
    regex = getattr(rule.matcher, "regex", None)
    if regex is None:
        return None
    return template_from_pattern(regex.pattern, _method_parameters(handler, request.method))


def _count_writes(span: Span, connection: Any) -> None:
    sent = [0]
    write_headers = connection.write_headers
    write = connection.write

    def counted(chunk: Any) -> None:
        try:
            if chunk:
                sent[0] += len(chunk)
                if span.is_recording():
                    put_response_size(span, sent[0])
        except Exception as exc:  # noqa: BLE001 - never into the app; counted
            report(exc)

    def counting_write_headers(start_line: Any, headers: Any, chunk: Any = None) -> Any:
        counted(chunk)
        return write_headers(start_line, headers, chunk)

    def counting_write(chunk: Any) -> Any:
        counted(chunk)
        return write(chunk)

    connection.write_headers = counting_write_headers
    connection.write = counting_write


def tornado_server_request_hook(span: Span, handler: Any) -> None:
    try:
        if not span.is_recording():
            return
        request = handler.request
        headers = request.headers
        size = content_length(headers.get("Content-Length"))
        if size is None:
            size = len(request.body or b"")
        put_request(
            span,
            headers.get,
            lambda: {k.lower(): v for k, v in headers.get_all()},
            size,
            str(request.method),
        )
        route = route_of(handler)
        if route:
            put_route(span, str(request.method), route)
        put_query_if_missing(span, str(request.uri or ""))
        _count_writes(span, request.connection)
    except Exception as exc:  # noqa: BLE001 - never into the app; counted
        report(exc)
