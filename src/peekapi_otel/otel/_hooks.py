"""``instrumentor_kwargs``: our hooks for each instrumentation, chained with the user's."""

import weakref
from collections.abc import Callable
from typing import Any, Final

from peekapi_otel.otel._bottle import bottle_response_hook
from peekapi_otel.otel._falcon import falcon_request_hook, falcon_response_hook
from peekapi_otel.otel._tornado import tornado_server_request_hook
from peekapi_otel.otel._wsgi import (
    django_request_hook,
    django_response_hook,
    flask_request_hook,
    flask_response_hook,
    wsgi_request_hook,
    wsgi_response_hook,
)

_HOOKS: Final[dict[str, dict[str, Callable[..., None]]]] = {
    "asgi": {},  # see _CountingASGI
    "wsgi": {"request_hook": wsgi_request_hook, "response_hook": wsgi_response_hook},
    "flask": {"request_hook": flask_request_hook, "response_hook": flask_response_hook},
    "django": {"request_hook": django_request_hook, "response_hook": django_response_hook},
    "bottle": {"request_hook": wsgi_request_hook, "response_hook": bottle_response_hook},
    "falcon": {"request_hook": falcon_request_hook, "response_hook": falcon_response_hook},
    "tornado": {"server_request_hook": tornado_server_request_hook},
}
_HOOKS["fastapi"] = _HOOKS["starlette"] = _HOOKS["quart"] = _HOOKS["asgi"]


def _litestar_settings() -> dict[str, Any]:
    from peekapi_otel.otel._litestar import config_kwargs

    return config_kwargs()


#: Settings rather than hooks: the user's value replaces ours.
_SETTINGS: Final[dict[str, Callable[[], dict[str, Any]]]] = {"litestar": _litestar_settings}
#: Our hooks and every chain made from them: passing one of them again (an app wired
#: with ``instrumentor_kwargs`` by hand under the distro) must not run ours twice.
_CARRY_OURS: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet(
    h for hooks in _HOOKS.values() for h in hooks.values()
)


def _chain(ours: Callable[..., None], theirs: Callable[..., Any]) -> Callable[..., None]:
    def both(*args: Any) -> None:
        ours(*args)
        theirs(*args)

    both.__name__ = getattr(theirs, "__name__", "hook")
    _CARRY_OURS.add(both)
    return both


def instrumentor_kwargs(framework: str, **user_hooks: Callable[..., Any] | None) -> dict[str, Any]:
    """Keyword arguments that add the PeekAPI hooks to an instrumentor or middleware.

    Args:
        framework: ``fastapi``, ``starlette``, ``asgi``, ``quart``, ``flask``, ``wsgi``,
            ``django``, ``bottle`` (for the WSGI middleware), ``falcon``, ``tornado`` or
            ``litestar`` (for ``OpenTelemetryConfig``: our span details extractor, which
            reports the route template; yours replaces it if you pass one).
        user_hooks: your own hooks under the instrumentation's names; they run after ours.
    """
    if framework in _SETTINGS:
        settings = _SETTINGS[framework]()
        settings.update({k: v for k, v in user_hooks.items() if v is not None})
        return settings
    try:
        ours = _HOOKS[framework]
    except KeyError:
        raise ValueError(
            f"unknown framework {framework!r}; expected one of "
            f"{', '.join(sorted([*_HOOKS, *_SETTINGS]))}"
        ) from None
    kwargs: dict[str, Any] = dict(ours)
    for name, hook in user_hooks.items():
        if hook is None:
            continue
        if name in ours and hook not in _CARRY_OURS:
            kwargs[name] = _chain(ours[name], hook)
        else:
            kwargs[name] = hook
    return kwargs
