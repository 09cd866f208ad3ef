"""Notification channels: a generic JSON webhook, Slack, Discord and Telegram over HTTP
(stdlib ``urllib``), and email (``_email``). A channel returns an outcome and never raises.

Secrets (a webhook URL, a bot token, an SMTP password) are read from the environment when
sending, and never appear in an outcome's error text, which is stored in the log.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, Protocol

from peekapi_otel._version import __version__
from peekapi_otel.server.alerts._payload import text
from peekapi_otel.server.alerts._rules import Channel

_RETRYABLE: Final = frozenset(
    {
        HTTPStatus.REQUEST_TIMEOUT,
        HTTPStatus.TOO_MANY_REQUESTS,
        HTTPStatus.INTERNAL_SERVER_ERROR,
        HTTPStatus.BAD_GATEWAY,
        HTTPStatus.SERVICE_UNAVAILABLE,
        HTTPStatus.GATEWAY_TIMEOUT,
    }
)
_USER_AGENT: Final = f"peekapi-otel-alerts/{__version__}"
# Discord's documented limits for a webhook message and its embeds.
_DISCORD_CONTENT: Final = 2000
_DISCORD_TITLE: Final = 256
_DISCORD_DESCRIPTION: Final = 4096
_TELEGRAM_TEXT: Final = 4096
_RED: Final = 0xD93025
_GREEN: Final = 0x1E8E3E
_BLUE: Final = 0x1A73E8


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    error: str | None = None
    retryable: bool = True
    retry_after: float | None = None


class Sender(Protocol):
    def send(self, payload: dict[str, Any]) -> Outcome: ...


class MissingSecret(LookupError):
    """An environment variable named in the alerts file is not set."""


def secret(channel: Channel, key: str) -> str | None:
    """The setting ``key`` of ``channel``: from the environment if the file names a
    variable for it, else from the file."""
    env = channel.secrets.get(key)
    if env is None:
        value = channel.settings.get(key)
        return None if value is None else str(value)
    value = os.environ.get(env)
    if not value:
        raise MissingSecret(f"environment variable {env} is not set")
    return value


def required_secret(channel: Channel, key: str) -> str:
    """Like :func:`secret`, for a setting the alerts file check made mandatory."""
    value = secret(channel, key)
    if value is None:
        raise MissingSecret(f"channel {channel.name!r} has no {key}")
    return value


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def post_json(url: str, body: Any, *, timeout: float, headers: dict[str, str]) -> Outcome:
    """POST ``body`` as JSON; 2xx is success, 408/429/5xx and network errors are retryable."""
    data = json.dumps(body).encode()
    try:
        request = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": _USER_AGENT, **headers},
        )
        if request.type not in ("http", "https"):
            raise ValueError(request.type)
    except ValueError:
        # urllib's message quotes the URL, which may be the secret itself.
        return Outcome(False, "not an http:// or https:// URL", retryable=False)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return Outcome(True)
    except urllib.error.HTTPError as exc:
        # Only the status and the start of the body: exc.url may carry a token.
        raw = exc.read()
        exc.close()
        detail = _short(raw)
        return Outcome(
            False,
            f"HTTP {exc.code}{': ' + detail if detail else ''}",
            retryable=exc.code in _RETRYABLE,
            retry_after=_retry_after(exc.headers.get("Retry-After")) or _body_retry_after(raw),
        )
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Outcome(False, f"{type(exc).__name__}: {reason}")
    except (http.client.InvalidURL, ValueError):  # their messages quote the URL
        return Outcome(False, "invalid URL", retryable=False)
    except http.client.HTTPException as exc:  # a malformed answer: the server may recover
        return Outcome(False, f"bad HTTP answer ({type(exc).__name__})")


def _body_retry_after(body: bytes) -> float | None:
    # Telegram answers 429 with {"parameters": {"retry_after": N}} in the body.
    try:
        value = json.loads(body)["parameters"]["retry_after"]
    except (ValueError, KeyError, TypeError):
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok and value >= 0 else None


def _short(body: bytes, limit: int = 200) -> str:
    return body[:limit].decode("utf-8", "replace").strip()


class WebhookSender:
    """The payload as is: the stable, documented format (see README)."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def send(self, payload: dict[str, Any]) -> Outcome:
        url = required_secret(self.channel, "url")
        headers = dict(self.channel.settings.get("headers", {}))
        for header, env in self.channel.settings.get("headers_env", {}).items():
            value = os.environ.get(env)
            if not value:
                raise MissingSecret(f"environment variable {env} is not set")
            headers[header] = value
        return post_json(url, payload, timeout=self.channel.settings["timeout"], headers=headers)


class SlackSender:
    """A Slack incoming webhook: ``{"text": ...}``."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def send(self, payload: dict[str, Any]) -> Outcome:
        url = required_secret(self.channel, "url")
        body = {"text": text(payload)}
        return post_json(url, body, timeout=self.channel.settings["timeout"], headers={})


def discord_body(payload: dict[str, Any], username: str | None = None) -> dict[str, Any]:
    colour = {"firing": _RED, "resolved": _GREEN}.get(payload["state"], _BLUE)
    value = payload["value"]
    fields = [
        {"name": "value", "value": "no data" if value is None else f"{value:g}{payload['unit']}"},
        {"name": "window", "value": payload["window"]},
    ]
    if payload["threshold"] is not None:
        fields.append({"name": "threshold", "value": f"{payload['threshold']:g}{payload['unit']}"})
    for key, label in payload["labels"].items():
        if key not in ("alertname", "kind"):
            fields.append({"name": key, "value": label[:1024]})
    embed: dict[str, Any] = {
        "title": payload["summary"][:_DISCORD_TITLE],
        "description": (payload.get("description") or payload["summary"])[:_DISCORD_DESCRIPTION],
        "url": payload["url"],
        "color": colour,
        "fields": [{**f, "inline": True} for f in fields],
        "timestamp": payload["sentAt"],
    }
    body: dict[str, Any] = {"content": payload["summary"][:_DISCORD_CONTENT], "embeds": [embed]}
    if username:
        body["username"] = username
    return body


class DiscordSender:
    """A Discord webhook: a one-line ``content`` and one embed with the figures."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def send(self, payload: dict[str, Any]) -> Outcome:
        url = required_secret(self.channel, "url")
        body = discord_body(payload, self.channel.settings.get("username"))
        return post_json(url, body, timeout=self.channel.settings["timeout"], headers={})


class TelegramSender:
    """Telegram Bot API ``sendMessage`` at ``{base_url}/bot{token}/sendMessage``."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def send(self, payload: dict[str, Any]) -> Outcome:
        token = required_secret(self.channel, "token")
        base = self.channel.settings["base_url"]
        body = {
            "chat_id": self.channel.settings["chat_id"],
            "text": text(payload)[:_TELEGRAM_TEXT],
            "link_preview_options": {"is_disabled": True},
        }
        return post_json(
            f"{base}/bot{token}/sendMessage",
            body,
            timeout=self.channel.settings["timeout"],
            headers={},
        )


class _MissingSecretSender:
    def __init__(self, sender: Sender) -> None:
        self.sender = sender

    def send(self, payload: dict[str, Any]) -> Outcome:
        try:
            return self.sender.send(payload)
        except MissingSecret as exc:
            # Someone has to set the variable and restart: retrying will not help.
            return Outcome(False, str(exc), retryable=False)


def build_sender(channel: Channel) -> Sender:
    from peekapi_otel.server.alerts._email import EmailSender

    senders: dict[str, type[WebhookSender | SlackSender | DiscordSender | TelegramSender]] = {
        "webhook": WebhookSender,
        "slack": SlackSender,
        "discord": DiscordSender,
        "telegram": TelegramSender,
    }
    if channel.type == "email":
        return _MissingSecretSender(EmailSender(channel))
    return _MissingSecretSender(senders[channel.type](channel))
