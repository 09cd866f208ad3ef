"""``instrumentor_kwargs``: our hooks for each instrumentation, chained with the user's."""

from collections.abc import Callable
from typing import Any, Final

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
