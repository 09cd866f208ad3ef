"""Configuration: one frozen ``Options`` object and the only home of every default.

Resolution order: explicit argument > ``PEEKAPI_*`` environment variable > default.
A bad argument raises ``ValueError``; a bad environment value logs one warning naming
the variable and falls back to the default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from peekapi_otel.core._endpoint import ConfigurationError, validate_endpoint

_logger = logging.getLogger(__name__)

ConsumerIdentifier = Callable[[Mapping[str, str]], "str | None"]
"""``identify_consumer(headers)``: lower-case header names to values; returns a consumer ID."""

ErrorCallback = Callable[[BaseException], None]

PEEKAPI_API_KEY: Final = "PEEKAPI_API_KEY"
"""Project API key sent as ``x-api-key``. Required."""
PEEKAPI_ENDPOINT: Final = "PEEKAPI_ENDPOINT"
"""Ingest URL. Default ``https://ingest.peekapi.dev/v1/events``."""
PEEKAPI_FLUSH_INTERVAL: Final = "PEEKAPI_FLUSH_INTERVAL"
"""Seconds between batch sends. Default 5.0."""
PEEKAPI_BATCH_SIZE: Final = "PEEKAPI_BATCH_SIZE"
"""Events per POST. Default 100."""
PEEKAPI_MAX_BUFFER_SIZE: Final = "PEEKAPI_MAX_BUFFER_SIZE"
"""Events held in memory before spilling to the spool. Default 10000."""
PEEKAPI_MAX_STORAGE_BYTES: Final = "PEEKAPI_MAX_STORAGE_BYTES"
"""Spool size cap in bytes; the oldest segments are evicted beyond it. Default 50 MiB."""
PEEKAPI_MAX_EVENT_BYTES: Final = "PEEKAPI_MAX_EVENT_BYTES"
"""Largest encoded event. Default 65536."""
PEEKAPI_STORAGE_PATH: Final = "PEEKAPI_STORAGE_PATH"
"""Spool root directory. Default a per-user cache directory."""
PEEKAPI_TIMEOUT: Final = "PEEKAPI_TIMEOUT"
"""Seconds per POST. Default 5.0."""
PEEKAPI_SHUTDOWN_TIMEOUT: Final = "PEEKAPI_SHUTDOWN_TIMEOUT"
"""Seconds for the final send at shutdown; the rest is spooled. Default 5.0."""
PEEKAPI_COLLECT_QUERY_STRING: Final = "PEEKAPI_COLLECT_QUERY_STRING"
"""Append the sorted query string to ``path``. Default false."""
PEEKAPI_PATH_SOURCE: Final = "PEEKAPI_PATH_SOURCE"
"""``route`` (template when known) or ``raw``. Default ``route``."""
PEEKAPI_CONSUMER_HEADERS: Final = "PEEKAPI_CONSUMER_HEADERS"
"""Headers the default consumer rule hashes, in order. Default ``x-api-key,authorization``."""
PEEKAPI_METADATA: Final = "PEEKAPI_METADATA"
"""A JSON object merged into every event's ``metadata``."""
PEEKAPI_COMPRESSION: Final = "PEEKAPI_COMPRESSION"
"""``none`` or ``gzip``. Default ``none``."""
PEEKAPI_RECORD_ALL: Final = "PEEKAPI_RECORD_ALL"
"""Count every request even when the trace sampler drops it. Default true."""
PEEKAPI_DEBUG: Final = "PEEKAPI_DEBUG"
"""Log every send at INFO. Default false."""

ENVIRONMENT_VARIABLES: Final = (
    PEEKAPI_API_KEY,
    PEEKAPI_ENDPOINT,
    PEEKAPI_FLUSH_INTERVAL,
    PEEKAPI_BATCH_SIZE,
    PEEKAPI_MAX_BUFFER_SIZE,
    PEEKAPI_MAX_STORAGE_BYTES,
    PEEKAPI_MAX_EVENT_BYTES,
    PEEKAPI_STORAGE_PATH,
    PEEKAPI_TIMEOUT,
    PEEKAPI_SHUTDOWN_TIMEOUT,
    PEEKAPI_COLLECT_QUERY_STRING,
    PEEKAPI_PATH_SOURCE,
    PEEKAPI_CONSUMER_HEADERS,
    PEEKAPI_METADATA,
    PEEKAPI_COMPRESSION,
    PEEKAPI_RECORD_ALL,
    PEEKAPI_DEBUG,
)

DEFAULT_ENDPOINT: Final = "https://ingest.peekapi.dev/v1/events"
_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected one of true/false/1/0/yes/no/on/off, got {text!r}")


def _positive_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    number = float(value)
    if not number > 0 or number != number or number == float("inf"):
        raise ValueError(f"expected a positive number, got {value!r}")
    return number


def _positive_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"expected an integer, got {value!r}")
        value = int(value)
    number = int(value)
    if number <= 0:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return number


def _nonneg_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    number = float(value)
    if not number >= 0 or number == float("inf"):
        raise ValueError(f"expected a number >= 0, got {value!r}")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return parse_bool(value)
    raise ValueError(f"expected a boolean, got {value!r}")


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")
        return text

    return parse


def _header_list(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(h).strip().lower() for h in items if str(h).strip())
    if not names:
        raise ValueError("expected at least one header name")
    return names


def _metadata(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise ValueError("expected a JSON object")
    result = dict(value)
    json.dumps(result)  # must be serialisable
    return result


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value.strip()


def _endpoint(value: Any) -> str:
    return validate_endpoint(_text(value))


def _path(value: Any) -> str:
    text = os.fspath(value)
    if not text:
        raise ValueError("expected a directory path")
    return str(text)


# field -> (env var, parser). The defaults live on the dataclass fields only.
_PARSERS: Final[dict[str, tuple[str, Callable[[Any], Any]]]] = {
    "api_key": (PEEKAPI_API_KEY, _text),
    "endpoint": (PEEKAPI_ENDPOINT, _endpoint),
    "flush_interval": (PEEKAPI_FLUSH_INTERVAL, _positive_float),
    "batch_size": (PEEKAPI_BATCH_SIZE, _positive_int),
    "max_buffer_size": (PEEKAPI_MAX_BUFFER_SIZE, _positive_int),
    "max_storage_bytes": (PEEKAPI_MAX_STORAGE_BYTES, _positive_int),
    "max_event_bytes": (PEEKAPI_MAX_EVENT_BYTES, _positive_int),
    "storage_path": (PEEKAPI_STORAGE_PATH, _path),
    "timeout": (PEEKAPI_TIMEOUT, _positive_float),
    "shutdown_timeout": (PEEKAPI_SHUTDOWN_TIMEOUT, _nonneg_float),
    "collect_query_string": (PEEKAPI_COLLECT_QUERY_STRING, _bool),
    "path_source": (PEEKAPI_PATH_SOURCE, _choice("route", "raw")),
    "consumer_headers": (PEEKAPI_CONSUMER_HEADERS, _header_list),
    "metadata": (PEEKAPI_METADATA, _metadata),
    "compression": (PEEKAPI_COMPRESSION, _choice("none", "gzip")),
    "record_all": (PEEKAPI_RECORD_ALL, _bool),
    "debug": (PEEKAPI_DEBUG, _bool),
}


@dataclasses.dataclass(frozen=True)
class Options:
    """Resolved PeekAPI settings. Build with :meth:`Options.from_env`.

    Built directly, every field is validated the same way: a bad value raises
    ``ValueError`` (SPEC §5), and values are normalised as ``from_env`` would.

    ``api_key`` may be empty: export is then disabled with one clear error and the
    app keeps serving.
    """

    api_key: str = dataclasses.field(default="", repr=False)  # a secret: never in repr()
    endpoint: str = DEFAULT_ENDPOINT
    flush_interval: float = 5.0
    batch_size: int = 100
    max_buffer_size: int = 10_000
    max_storage_bytes: int = 52_428_800
    max_event_bytes: int = 65_536
    storage_path: str | None = None
    timeout: float = 5.0
    shutdown_timeout: float = 5.0
    collect_query_string: bool = False
    path_source: str = "route"
    consumer_headers: tuple[str, ...] = ("x-api-key", "authorization")
    metadata: Mapping[str, Any] | None = None
    compression: str = "none"
    record_all: bool = True
    debug: bool = False
    identify_consumer: ConsumerIdentifier | None = dataclasses.field(
        default=None, compare=False, repr=False
    )
    on_error: ErrorCallback | None = dataclasses.field(default=None, compare=False, repr=False)
    #: Problems found while reading the environment, one line each (for ``check``).
    warnings: tuple[str, ...] = dataclasses.field(default=(), compare=False, repr=False)
    #: Why the ``PEEKAPI_ENDPOINT`` value was refused, if it was.
    endpoint_error: str | None = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Built directly (Options(...)) or by from_env: every field passes the same parser,
        # so a bad value raises here and no exporter can ever be given one.
        for name, (_var, parse) in _PARSERS.items():
            value = getattr(self, name)
            if value is None and name in ("storage_path", "metadata"):
                continue
            if name == "endpoint" and value == "" and self.endpoint_error:
                continue  # refused from the environment: export disabled, reported once
            try:
                parsed = parse(value)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"invalid {name}: {exc}") from None
            object.__setattr__(self, name, parsed)
        for name in ("identify_consumer", "on_error"):
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise ConfigurationError(f"{name} must be callable")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Options:
        """Resolve options: ``overrides`` > ``environ`` (default ``os.environ``) > defaults.

        Raises:
            ValueError: an override is unknown or invalid.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        warnings: list[str] = []
        for name in overrides:
            if name not in _PARSERS and name not in ("identify_consumer", "on_error"):
                raise ConfigurationError(f"unknown option {name!r}")
        for name, (var, parse) in _PARSERS.items():
            given = overrides.get(name)
            if given is not None:
                try:
                    values[name] = parse(given)
                except (TypeError, ValueError) as exc:
                    raise ConfigurationError(f"invalid {name}: {exc}") from None
                continue
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[name] = parse(raw)
            except (TypeError, ValueError) as exc:
                if name == "endpoint":
                    # Never fall back to another endpoint: the exporter reports this once
                    # as the reason export is disabled.
                    values["endpoint"] = ""
                    values["endpoint_error"] = f"{var} is refused: {exc}"
                    continue
                message = f"{var}={_mask(var, raw)!s} is invalid ({exc}); using the default"
                warnings.append(message)
                _logger.warning("peekapi-otel: %s", message)
        for name in ("identify_consumer", "on_error"):
            fn = overrides.get(name)
            if fn is not None and not callable(fn):
                raise ConfigurationError(f"{name} must be callable")
            values[name] = fn
        return cls(**values, warnings=tuple(warnings))

    @property
    def problem(self) -> str | None:
        """Why export is disabled, or ``None`` when these options can send."""
        if not self.api_key:
            return (
                f"no API key: set {PEEKAPI_API_KEY} (or pass api_key=); "
                "PeekAPI export is disabled and the app keeps serving"
            )
        if not self.endpoint:
            reason = self.endpoint_error or "the endpoint was refused"
            return f"{reason}. PeekAPI export is disabled until it is fixed; the app keeps serving"
        return None

    def spool_dir(self) -> Path:
        """The spool directory for this (endpoint, API key) pair."""
        root = Path(self.storage_path) if self.storage_path else default_storage_root()
        digest = hashlib.sha256(f"{self.endpoint}\n{self.api_key}".encode()).hexdigest()
        return root / digest[:16]


def default_storage_root() -> Path:
    """``$XDG_CACHE_HOME/peekapi-otel`` or ``~/.cache/peekapi-otel``; a temp dir if no home."""
    base = os.environ.get("XDG_CACHE_HOME")
    if base:
        return Path(base) / "peekapi-otel"
    home = os.path.expanduser("~")
    if home and home != "~" and os.access(home, os.W_OK):
        return Path(home) / ".cache" / "peekapi-otel"
    return Path(tempfile.gettempdir()) / f"peekapi-otel-{os.getuid()}"


def _mask(var: str, raw: str) -> str:
    if var == PEEKAPI_API_KEY:
        return mask_secret(raw)
    return repr(raw)


def mask_secret(secret: str) -> str:
    """Show only enough of a secret to recognise it."""
    if not secret:
        return "(not set)"
    if len(secret) <= 8:
        return "****"
    return f"{secret[:4]}…{secret[-2:]}"
