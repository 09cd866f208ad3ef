"""Our hooks for instrumentors built without them: by another distro's
``load_instrumentor``, or by the user's own ``FlaskInstrumentor().instrument_app(app)``
after ``configure()``."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Iterable
from typing import Any, Final

from peekapi_otel.otel._framework_defaults import AFTER_INSTRUMENT, after_instrument
from peekapi_otel.otel._hooks import instrumentor_kwargs
from peekapi_otel.otel._sdk import patch_instrumentor, replace_attribute
from peekapi_otel.otel._state import STATE

_logger = logging.getLogger(__name__)

#: instrumentor entry-point name -> (module, class, hooks flavour, which is also the name
#: of the framework's own package)
INSTRUMENTORS: Final = {
    "fastapi": ("opentelemetry.instrumentation.fastapi", "FastAPIInstrumentor", "fastapi"),
    "starlette": ("opentelemetry.instrumentation.starlette", "StarletteInstrumentor", "starlette"),
    "flask": ("opentelemetry.instrumentation.flask", "FlaskInstrumentor", "flask"),
    "django": ("opentelemetry.instrumentation.django", "DjangoInstrumentor", "django"),
    "falcon": ("opentelemetry.instrumentation.falcon", "FalconInstrumentor", "falcon"),
    "tornado": ("opentelemetry.instrumentation.tornado", "TornadoInstrumentor", "tornado"),
}
#: The instrumentors whose hooks carry the consumer and the sizes (the ASGI ones count
#: inside the middleware instead).
HOOKED: Final = ("flask", "django")


def traces_go_nowhere() -> bool:
    names = os.environ.get("OTEL_TRACES_EXPORTER", "none").lower().replace(" ", "")
    return names in ("", "none")


def with_hooks(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` plus our hooks for instrumentor ``name``; the user's hooks still run."""
    flavour = INSTRUMENTORS[name][2]
    names = instrumentor_kwargs(flavour).keys()
    theirs = {k: kwargs.get(k) for k in names}
    merged = dict(kwargs)
    merged.update(instrumentor_kwargs(flavour, **theirs))
    if name == "fastapi" and "exclude_spans" not in merged and STATE.cut_message_spans:
        # One span per ASGI message roughly doubles OpenTelemetry's cost per request
        # (benchmarks/). With no trace exporter nobody can see them, and PeekAPI counts
        # bytes without them; with an exporter the user's traces keep OTel's defaults.
        merged["exclude_spans"] = ["send", "receive"]
    return merged


def chain_hooks_into_instrumentors(names: Iterable[str] = HOOKED) -> None:
    """Make each instrumentor in ``names`` that is installed also run our hooks, however
    it is built from now on (a reversible patch, see ``_sdk.patch_instrumentor``)."""
    for name in names:
        module_name, class_name, framework = INSTRUMENTORS[name]
        try:
            # Nothing is imported for a framework that is not installed (the Django
            # instrumentation is installed with peekapi-otel, Django itself need not be).
            if module_name not in sys.modules and (
                importlib.util.find_spec(framework) is None
                or importlib.util.find_spec(module_name) is None
            ):
                continue
            cls = getattr(importlib.import_module(module_name), class_name)
            patch_instrumentor(cls, functools.partial(with_hooks, name))
        except Exception:
            _logger.debug("peekapi-otel: no hooks for %s", name, exc_info=True)


def chain_glue_into_instrumentors() -> None:
    """Make each instrumentor that takes no hooks (Pyramid, aiohttp server) add our glue
    right after its ``instrument()``, however it is built from now on (a reversible
    patch)."""
    for name, (module_name, class_name, _) in AFTER_INSTRUMENT.items():
        try:
            if module_name not in sys.modules and importlib.util.find_spec(module_name) is None:
                continue
            cls = getattr(importlib.import_module(module_name), class_name)
            original = cls._instrument

            def _instrument_then_glue(
                self: Any, _orig: Any = original, _name: str = name, **kwargs: Any
            ) -> Any:
                result = _orig(self, **kwargs)
                after_instrument(_name)
                return result

            replace_attribute(cls, "_instrument", _instrument_then_glue)
        except Exception:  # a missing or odd instrumentor is not fatal
            _logger.debug("peekapi-otel: no glue for %s", name, exc_info=True)
