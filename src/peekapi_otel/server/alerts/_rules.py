"""The alerts file: TOML rules and channels, checked as a whole before ``serve`` starts.

Every problem is reported as ``FILE:LINE: reason``. The line of a syntax error comes from
the TOML parser; the line of a wrong value is found again in the text (the parser keeps
no positions), which points at the key, or at the table that lacks it.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from peekapi_otel.server.alerts._duration import parse_duration

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

Kind = Literal["error_rate", "latency", "volume", "inactivity"]
KINDS: Final[tuple[str, ...]] = ("error_rate", "latency", "volume", "inactivity")
CHANNEL_TYPES: Final[tuple[str, ...]] = ("webhook", "slack", "discord", "telegram", "email")
STATUS_CLASSES: Final = {"5xx": (500, 599), "4xx": (400, 499), "errors": (400, 599)}
LATENCY_STATS: Final = ("avg", "p50", "p90", "p95", "p99")
DEFAULT_INTERVAL: Final = 15
DEFAULT_REPEAT: Final = 4 * 3600
TELEGRAM_API: Final = "https://api.telegram.org"
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class AlertsFileError(ValueError):
    """The alerts file cannot be used; ``str()`` is ``FILE:LINE: reason``."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class Selector:
    """Which events a rule looks at; ``None`` matches everything. A ``*`` in ``path``
    is a wildcard (SQLite GLOB)."""

    method: str | None = None
    path: str | None = None
    consumer: str | None = None

    def labels(self) -> dict[str, str]:
        pairs = (("method", self.method), ("path", self.path), ("consumer", self.consumer))
        return {k: v for k, v in pairs if v is not None}


@dataclass(frozen=True)
class Rule:
    name: str
    kind: Kind
    window: int
    selector: Selector
    threshold: float | None
    min_requests: int
    statuses: str  # error_rate: a key of STATUS_CLASSES
    stat: str  # latency: one of LATENCY_STATS
    direction: str  # volume: "spike" or "drop"
    for_: int
    keep_firing_for: int
    repeat_interval: int  # 0: one notification per firing episode
    channels: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class Channel:
    """A notification channel. ``secrets`` maps a setting to the environment variable
    holding it; the value is read when sending, so it is never stored or printed."""

    name: str
    type: str
    settings: dict[str, Any]
    secrets: dict[str, str]


@dataclass(frozen=True)
class AlertsConfig:
    path: str
    interval: int
    dashboard_url: str | None
    rules: tuple[Rule, ...]
    channels: dict[str, Channel]

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)


class _Locator:
    """Finds the line of a key inside a table of the source, for errors about values."""

    def __init__(self, text: str) -> None:
        # (header, occurrence) -> first line of that table; keys as seen in each table.
        self._tables: list[tuple[str, int]] = [("", 1)]
        self._keys: list[dict[str, int]] = [{}]
        header = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
        key = re.compile(r"^\s*([A-Za-z0-9_\-\"']+)\s*=")
        for number, line in enumerate(text.splitlines(), start=1):
            match = header.match(line)
            if match:
                self._tables.append((match.group(2).replace('"', "").replace("'", ""), number))
                self._keys.append({})
                continue
            match = key.match(line)
            if match:
                self._keys[-1].setdefault(match.group(1).strip("\"'"), number)

    def line(self, table: str, index: int, key: str | None = None) -> int | None:
        """Line of ``key`` in the ``index``-th table called ``table`` (or of the header)."""
        seen = -1
        for (name, number), keys in zip(self._tables, self._keys, strict=True):
            if name != table:
                continue
            seen += 1
            if seen == index:
                if key is not None and key in keys:
                    return keys[key]
                return number if table else (keys.get(key or "") or None)
        return None


class _Table:
    """One TOML table being read, with the place to blame when a value is wrong."""

    def __init__(
        self, data: dict[str, Any], what: str, table: str, index: int, ctx: _Context
    ) -> None:
        self.data = data
        self.what = what
        self.table = table
        self.index = index
        self.ctx = ctx
        self.used: set[str] = set()

    def fail(self, key: str | None, reason: str) -> AlertsFileError:
        line = self.ctx.locator.line(self.table, self.index, key)
        return AlertsFileError(self.ctx.path, line, f"{self.what}: {reason}")

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.data.get(key, default)

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.get(key, default)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise self.fail(key, f"{key} must be a non-empty string")
        return value

    def required(self, key: str) -> str:
        value = self.string(key)
        if value is None:
            raise self.fail(None, f"missing {key}")
        return value

    def number(self, key: str, *, minimum: float = 0.0) -> float | None:
        value = self.get(key)
        if value is None:
            return None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < minimum:
            raise self.fail(key, f"{key} must be a number >= {minimum:g}, not {value!r}")
        return float(value)

    def integer(self, key: str, default: int, *, minimum: int = 0) -> int:
        value = self.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(key, f"{key} must be an integer >= {minimum}, not {value!r}")
        return value

    def duration(self, key: str, default: int | None, *, minimum: int = 0) -> int:
        value = self.get(key)
        if value is None:
            if default is None:
                raise self.fail(None, f"missing {key}")
            return default
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise self.fail(key, f"{key}: {exc}") from None
        if seconds < minimum:
            raise self.fail(key, f"{key} must be at least {minimum}s")
        return seconds

    def choice(self, key: str, options: tuple[str, ...], default: str | None) -> str:
        """``key`` among ``options``; required when ``default`` is None."""
        value = self.get(key, default)
        if value is None:
            raise self.fail(None, f"missing {key} (one of {', '.join(options)})")
        if value not in options:
            raise self.fail(key, f"{key} must be one of {', '.join(options)}, not {value!r}")
        return str(value)

    def strings(self, key: str) -> tuple[str, ...] | None:
        value = self.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, f"{key} must be a list of names")
        return tuple(value)

    def check_unknown(self) -> None:
        for key in self.data:
            if key not in self.used:
                raise self.fail(key, f"unknown setting {key!r}")


@dataclass
class _Context:
    path: str
    locator: _Locator


def load_alerts(path: str | Path) -> AlertsConfig:
    """Read and check the alerts file; raises :class:`AlertsFileError`."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AlertsFileError(name, None, f"cannot read the alerts file: {exc}") from None
    return parse_alerts(text, name)


def parse_alerts(text: str, path: str = "alerts.toml") -> AlertsConfig:
    """Check ``text`` as an alerts file named ``path`` (used in the messages)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(path, exc) from None
    ctx = _Context(path, _Locator(text))
    top = _Table(data, "alerts file", "", 0, ctx)
    settings = _settings(top, ctx)
    channels = _channels(top, ctx)
    rules = _rules(top, ctx, channels)
    top.check_unknown()
    return AlertsConfig(path, settings[0], settings[1], rules, channels)


def _syntax_error(path: str, exc: Exception) -> AlertsFileError:
    # tomllib ends its message with "(at line L, column C)"; older tomli spells it the same.
    message = str(exc)
    match = re.search(r"\(at line (\d+), column \d+\)$", message)
    line = int(match.group(1)) if match else getattr(exc, "lineno", None)
    reason = message[: match.start()].strip() if match else message
    return AlertsFileError(path, line, f"invalid TOML: {reason}")


def _settings(top: _Table, ctx: _Context) -> tuple[int, str | None]:
    raw = top.get("settings", {})
    if not isinstance(raw, dict):
        raise top.fail("settings", "settings must be a table")
    table = _Table(raw, "[settings]", "settings", 0, ctx)
    interval = table.duration("interval", DEFAULT_INTERVAL, minimum=1)
    url = table.string("dashboard_url")
    if url is not None and not url.startswith(("http://", "https://")):
        raise table.fail("dashboard_url", "dashboard_url must start with http:// or https://")
    table.check_unknown()
    return interval, None if url is None else url.rstrip("/")


_CHANNEL_KEYS: Final = {
    # type: (plain settings, settings that may come from the environment, required)
    "webhook": (("url", "timeout", "headers", "headers_env"), ("url",), ("url",)),
    "slack": (("url", "timeout"), ("url",), ("url",)),
    "discord": (("url", "timeout", "username"), ("url",), ("url",)),
    "telegram": (("token", "chat_id", "base_url", "timeout"), ("token",), ("token", "chat_id")),
    "email": (
        ("host", "port", "security", "username", "password", "from", "to", "timeout"),
        ("password", "username"),
        ("host", "from", "to"),
    ),
}


def _channels(top: _Table, ctx: _Context) -> dict[str, Channel]:
    raw = top.get("channels", {})
    if not isinstance(raw, dict):
        raise top.fail("channels", "channels must be a table of [channels.NAME] tables")
    out: dict[str, Channel] = {}
    for name, body in raw.items():
        table_name = f"channels.{name}"
        if not isinstance(body, dict):
            raise top.fail(None, f"[{table_name}] must be a table")
        table = _Table(body, f"channel {name!r}", table_name, 0, ctx)
        if not _NAME.match(name):
            raise table.fail(None, "a channel name is letters, digits, '_', '.', ':' or '-'")
        kind = table.choice("type", CHANNEL_TYPES, None)
        plain, from_env, required = _CHANNEL_KEYS[kind]
        settings: dict[str, Any] = {}
        secrets: dict[str, str] = {}
        for key in plain:
            if key in body:
                settings[key] = table.get(key)
        for key in from_env:
            env = table.string(f"{key}_env")
            if env is not None:
                if key in settings:
                    raise table.fail(f"{key}_env", f"give {key} or {key}_env, not both")
                secrets[key] = env
        for key in required:
            if key not in settings and key not in secrets:
                hint = f" (or {key}_env)" if key in from_env else ""
                raise table.fail(None, f"missing {key}{hint}")
        _check_channel(table, kind, settings)
        table.check_unknown()
        out[name] = Channel(name, kind, settings, secrets)
    return out


def _check_channel(table: _Table, kind: str, settings: dict[str, Any]) -> None:
    for key in ("url", "base_url"):
        value = settings.get(key)
        if value is not None and (
            not isinstance(value, str) or not value.startswith(("http://", "https://"))
        ):
            raise table.fail(key, f"{key} must be an http:// or https:// URL")
    timeout = table.number("timeout", minimum=0.1)
    settings["timeout"] = 10.0 if timeout is None else timeout
    if kind == "webhook":
        headers = settings.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise table.fail("headers", "headers must be a table of strings")
        settings["headers"] = headers
        # Header values that are secrets (an Authorization token): variable names only.
        headers_env = settings.get("headers_env", {})
        if not isinstance(headers_env, dict) or not all(
            isinstance(v, str) for v in headers_env.values()
        ):
            raise table.fail("headers_env", "headers_env must be a table of variable names")
        settings["headers_env"] = headers_env
    if kind == "telegram":
        chat = settings.get("chat_id")
        if isinstance(chat, bool) or not isinstance(chat, (str, int)):
            raise table.fail("chat_id", "chat_id must be a string or an integer")
        settings.setdefault("base_url", TELEGRAM_API)
        settings["base_url"] = str(settings["base_url"]).rstrip("/")
    if kind == "email":
        settings["security"] = table.choice("security", ("starttls", "ssl", "none"), "starttls")
        default_port = {"starttls": 587, "ssl": 465, "none": 25}[settings["security"]]
        settings["port"] = table.integer("port", default_port, minimum=1)
        to = table.strings("to")
        settings["to"] = list(to or ())
        for key in ("host", "from", "username", "password"):
            if key in settings:
                table.string(key)


def _rules(top: _Table, ctx: _Context, channels: dict[str, Channel]) -> tuple[Rule, ...]:
    raw = top.get("rules", [])
    if not isinstance(raw, list):
        raise top.fail("rules", "rules must be [[rules]] tables")
    rules: list[Rule] = []
    names: set[str] = set()
    for index, body in enumerate(raw):
        table = _Table(body, f"rule {index + 1}", "rules", index, ctx)
        name = table.required("name")
        table.what = f"rule {name!r}"
        if not _NAME.match(name):
            raise table.fail("name", "a rule name is letters, digits, '_', '.', ':' or '-'")
        if name in names:
            raise table.fail("name", "another rule has this name")
        names.add(name)
        rules.append(_rule(table, name, channels))
    return tuple(rules)


def _rule(table: _Table, name: str, channels: dict[str, Channel]) -> Rule:
    kind = table.choice("kind", KINDS, None)
    selector = _selector(table)
    window = table.duration("window", None, minimum=1)
    threshold = table.number("threshold")
    statuses = table.choice("statuses", tuple(STATUS_CLASSES), "5xx")
    stat = table.choice("stat", LATENCY_STATS, "p95")
    direction = table.choice("direction", ("spike", "drop"), "spike")
    needs_threshold = kind != "inactivity"
    if needs_threshold and threshold is None:
        raise table.fail(None, f"missing threshold (a {kind} rule needs one)")
    if not needs_threshold and threshold is not None:
        raise table.fail("threshold", "an inactivity rule has no threshold, only a window")
    if kind == "error_rate" and threshold is not None and threshold > 100:
        raise table.fail("threshold", "an error rate threshold is a percentage, 0-100")
    if kind == "volume" and direction == "drop" and threshold is not None and threshold >= 100:
        raise table.fail("threshold", "a drop is a percentage below 100")
    for key, applies in (
        ("statuses", kind == "error_rate"),
        ("stat", kind == "latency"),
        ("direction", kind == "volume"),
        ("min_requests", kind != "inactivity"),
    ):
        if key in table.data and not applies:
            raise table.fail(key, f"{key} does not apply to a {kind} rule")
    names = table.strings("channels")
    if names is None:
        names = tuple(channels)
    for channel in names:
        if channel not in channels:
            raise table.fail("channels", f"no channel named {channel!r}")
    labels = table.get("labels", {})
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise table.fail("labels", "labels must be a table of strings")
    rule = Rule(
        name=name,
        kind=kind,  # type: ignore[arg-type]  # checked against KINDS above
        window=window,
        selector=selector,
        threshold=threshold,
        min_requests=table.integer("min_requests", 1, minimum=1),
        statuses=statuses,
        stat=stat,
        direction=direction,
        for_=table.duration("for", 0),
        keep_firing_for=table.duration("keep_firing_for", 0),
        repeat_interval=table.duration("repeat_interval", DEFAULT_REPEAT),
        channels=names,
        labels=dict(labels),
        description=table.string("description") or "",
    )
    table.check_unknown()
    return rule


def _selector(table: _Table) -> Selector:
    endpoint = table.string("endpoint")
    method = table.string("method")
    path = table.string("path")
    if endpoint is not None:
        if method is not None or path is not None:
            raise table.fail("endpoint", "give endpoint, or method and path, not both")
        parts = endpoint.split(None, 1)
        if len(parts) != 2 or not parts[1].startswith("/"):
            raise table.fail("endpoint", 'endpoint is "METHOD /path", e.g. "POST /checkout"')
        method, path = parts
    if path is not None and not path.startswith("/"):
        raise table.fail("path", "path must start with /")
    return Selector(
        method=None if method is None else method.upper(),
        path=path,
        consumer=table.string("consumer"),
    )
