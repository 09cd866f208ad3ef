"""Each channel against a real loopback receiver: what leaves the process, byte for byte
where the format is fixed; secrets from the environment and nowhere else; retry with
backoff for a failing channel, counted."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from peekapi_otel.server.alerts._channels import build_sender, discord_body
from peekapi_otel.server.alerts._dispatch import Backoff, Dispatcher
from peekapi_otel.server.alerts._email import EmailSender
from peekapi_otel.server.alerts._payload import build_payload
from peekapi_otel.server.alerts._rules import AlertsConfig, parse_alerts
from peekapi_otel.server.alerts._state import AlertState
from peekapi_otel.server.alerts._statedb import AlertDatabase
from server.alerts.smtp import Certificate, make_certificate, smtp_server
from server.alerts.support import T0, Clock, event, receiver, store_events

RULE = """
[[rules]]
name = "pay-errors"
kind = "error_rate"
endpoint = "POST /pay"
threshold = 5
window = "5m"
description = "Payments are failing"
"""


def _config(channels: str) -> AlertsConfig:
    return parse_alerts(channels + RULE)


def _payload(config: AlertsConfig, event: str = "firing") -> dict[str, Any]:
    state = AlertState(state="firing", active_since=T0 - 60, value=12.5)
    return build_payload(config.rules[0], state, event, dashboard="http://127.0.0.1:8787", now=T0)


def test_slack_gets_text(monkeypatch: pytest.MonkeyPatch) -> None:
    with receiver() as slack:
        monkeypatch.setenv("TEST_SLACK_URL", f"{slack.url}/services/T0/B0/xyz")
        config = _config('[channels.slack]\ntype = "slack"\nurl_env = "TEST_SLACK_URL"\n')
        outcome = build_sender(config.channels["slack"]).send(_payload(config))
        assert outcome.ok, outcome.error
        (request,) = slack.requests
    assert request.path == "/services/T0/B0/xyz"
    assert request.body == {
        "text": "[FIRING] pay-errors: error rate 12.5% > 5% over 5m (method=POST, path=/pay)\n"
        "Payments are failing\n"
        "since 2026-12-03T07:59:00+00:00\n"
        "http://127.0.0.1:8787/?range=15m&method=POST&path=%2Fpay"
    }


def test_discord_gets_content_and_an_embed() -> None:
    with receiver(statuses=[204]) as discord:
        config = _config(
            f'[channels.d]\ntype = "discord"\nurl = "{discord.url}/api/webhooks/1/tok"\n'
            'username = "PeekAPI"\n'
        )
        payload = _payload(config, "resolved")
        outcome = build_sender(config.channels["d"]).send(payload)
        assert outcome.ok, outcome.error
        (request,) = discord.requests
    body = request.body
    assert body == discord_body(payload, "PeekAPI")
    assert body["username"] == "PeekAPI"
    assert body["content"].startswith("[RESOLVED] pay-errors: error rate 12.5%")
    (embed,) = body["embeds"]
    assert embed["color"] == 0x1E8E3E
    assert embed["description"] == "Payments are failing"
    assert embed["url"] == payload["url"]
    assert embed["timestamp"] == "2026-12-03T08:00:00+00:00"
    assert {f["name"]: f["value"] for f in embed["fields"]} == {
        "value": "12.5%",
        "window": "5m",
        "threshold": "5%",
        "method": "POST",
        "path": "/pay",
    }


def test_discord_limits_are_kept() -> None:
    config = _config('[channels.d]\ntype = "discord"\nurl = "http://127.0.0.1:1/"\n')
    payload = {**_payload(config), "summary": "x" * 5000, "description": "y" * 5000}
    body = discord_body(payload)
    assert len(body["content"]) == 2000
    assert len(body["embeds"][0]["title"]) == 256
    assert len(body["embeds"][0]["description"]) == 4096


def test_telegram_send_message_at_a_configured_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_TG_TOKEN", "123:ABC")
    with receiver() as telegram:
        config = _config(
            '[channels.tg]\ntype = "telegram"\ntoken_env = "TEST_TG_TOKEN"\n'
            f'chat_id = -1001\nbase_url = "{telegram.url}/"\n'
        )
        outcome = build_sender(config.channels["tg"]).send(_payload(config))
        assert outcome.ok, outcome.error
        (request,) = telegram.requests
    assert request.path == "/bot123:ABC/sendMessage"
    assert request.body["chat_id"] == -1001
    assert request.body["text"].startswith("[FIRING] pay-errors")
    assert request.body["link_preview_options"] == {"is_disabled": True}


def test_a_failure_never_shows_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_TG_TOKEN", "123:TOPSECRET")
    with receiver(statuses=[401]) as telegram:
        config = _config(
            '[channels.tg]\ntype = "telegram"\ntoken_env = "TEST_TG_TOKEN"\n'
            f'chat_id = "@ops"\nbase_url = "{telegram.url}"\n'
        )
        outcome = build_sender(config.channels["tg"]).send(_payload(config))
    assert not outcome.ok
    assert not outcome.retryable
    assert outcome.error is not None
    assert outcome.error.startswith("HTTP 401")
    assert "TOPSECRET" not in outcome.error


def test_an_unset_variable_fails_without_retrying(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_SLACK_URL", raising=False)
    config = _config('[channels.slack]\ntype = "slack"\nurl_env = "TEST_SLACK_URL"\n')
    outcome = build_sender(config.channels["slack"]).send(_payload(config))
    assert (outcome.ok, outcome.retryable) == (False, False)
    assert outcome.error == "environment variable TEST_SLACK_URL is not set"


def _email_config(port: int, security: str, extra: str = "") -> AlertsConfig:
    return _config(
        f'[channels.mail]\ntype = "email"\nhost = "127.0.0.1"\nport = {port}\n'
        f'security = "{security}"\nfrom = "alerts@peek.test"\n'
        f'to = ["oncall@peek.test", "lead@peek.test"]\n{extra}'
    )


def test_email_plain_with_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret")
    with smtp_server(auth=True) as mailbox:
        config = _email_config(
            mailbox.port, "none", 'username = "alerts"\npassword_env = "TEST_SMTP_PASSWORD"\n'
        )
        outcome = build_sender(config.channels["mail"]).send(_payload(config))
        assert outcome.ok, outcome.error
    assert mailbox.logins == [("alerts", "s3cret")]
    ((sender, recipients, message),) = mailbox.messages
    assert sender == "alerts@peek.test"
    assert recipients == ["oncall@peek.test", "lead@peek.test"]
    assert message["Subject"] == (
        "[FIRING] pay-errors: error rate 12.5% > 5% over 5m (method=POST, path=/pay)"
    )
    assert message["X-PeekAPI-Alert"] == "pay-errors; state=firing"
    assert "Payments are failing" in message.get_content()  # type: ignore[attr-defined]


def test_email_wrong_password_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
    with smtp_server(auth=True) as mailbox:
        config = _email_config(
            mailbox.port, "none", 'username = "alerts"\npassword_env = "TEST_SMTP_PASSWORD"\n'
        )
        outcome = build_sender(config.channels["mail"]).send(_payload(config))
    assert (outcome.ok, outcome.retryable) == (False, False), outcome.error
    assert outcome.error is not None
    assert "wrong" not in outcome.error
    assert mailbox.messages == []


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_email_over_tls(certificate: Certificate, security: str) -> None:
    tls = {"starttls": certificate} if security == "starttls" else {"implicit_tls": certificate}
    with smtp_server(**tls) as mailbox:  # type: ignore[arg-type]
        config = _email_config(mailbox.port, security)
        sender = EmailSender(config.channels["mail"], tls_context=certificate.client_context())
        outcome = sender.send(_payload(config))
        assert outcome.ok, outcome.error
    assert len(mailbox.messages) == 1


def test_email_tls_verifies_the_certificate(certificate: Certificate) -> None:
    with smtp_server(starttls=certificate) as mailbox:
        config = _email_config(mailbox.port, "starttls")
        # The default context does not trust a self-signed certificate.
        outcome = build_sender(config.channels["mail"]).send(_payload(config))
    assert not outcome.ok
    assert outcome.error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.error
    assert mailbox.messages == []


def _queue(tmp_path: Path, config: AlertsConfig, clock: Clock) -> AlertDatabase:
    db_path = tmp_path / "e.db"
    store_events(db_path, [event(T0)])
    db = AlertDatabase(db_path)
    payload = _payload(config)
    db.save("pay-errors", AlertState(state="firing"), [("hook", "firing", payload)], clock())
    return db


def _row(db: AlertDatabase) -> tuple[Any, ...]:
    row: tuple[Any, ...] = db.connection.execute(
        "SELECT status, attempts, next_attempt_at, error FROM alert_notifications"
    ).fetchone()
    return row


def test_a_failing_channel_is_retried_with_backoff_and_counted(tmp_path: Path) -> None:
    clock = Clock()
    with receiver(statuses=[503, 500, 429, 200], retry_after="120") as hook:
        config = _config(f'[channels.hook]\ntype = "webhook"\nurl = "{hook.url}"\n')
        db = _queue(tmp_path, config, clock)
        dispatcher = Dispatcher(
            db,
            {"hook": build_sender(config.channels["hook"])},
            clock=clock,
            backoff=Backoff(first=5, longest=600, attempts=8),
        )
        assert dispatcher.deliver_due() == 0
        assert _row(db) == ("pending", 1, T0 + 5, 'HTTP 503: {"ok":false}')
        # Not due yet: nothing is tried.
        clock.advance(4)
        assert dispatcher.deliver_due() == 0
        assert len(hook.requests) == 1
        clock.advance(1)
        assert dispatcher.deliver_due() == 0
        assert _row(db)[:3] == ("pending", 2, T0 + 5 + 10)  # doubled
        clock.advance(10)
        assert dispatcher.deliver_due() == 0
        # 429 with Retry-After: 120 waits longer than the backoff's 20 s.
        assert _row(db)[:3] == ("pending", 3, T0 + 15 + 120)
        clock.advance(120)
        assert dispatcher.deliver_due() == 1
        assert _row(db)[:2] == ("sent", 4)
        assert len(hook.requests) == 4
        # Every attempt carried the same payload.
        assert len({json.dumps(r.body, sort_keys=True) for r in hook.requests}) == 1
    counts = dispatcher.counts["hook"]
    assert (counts.sent, counts.failed_attempts, counts.given_up) == (1, 3, 0)
    assert db.channel_totals() == {"hook": {"sent": 1, "pending": 0, "failed": 0, "attempts": 4}}
    db.close()


def test_a_channel_that_keeps_failing_is_given_up_after_the_last_attempt(
    tmp_path: Path,
) -> None:
    clock = Clock()
    with receiver(statuses=[503] * 10) as hook:
        config = _config(f'[channels.hook]\ntype = "webhook"\nurl = "{hook.url}"\n')
        db = _queue(tmp_path, config, clock)
        dispatcher = Dispatcher(
            db,
            {"hook": build_sender(config.channels["hook"])},
            clock=clock,
            backoff=Backoff(first=1, longest=4, attempts=4),
        )
        delays = []
        for _ in range(10):
            before = clock.now
            dispatcher.deliver_due()
            status, attempts, next_at, _error = _row(db)
            if status != "pending":
                break
            delays.append(next_at - before)
            clock.now = next_at
        assert delays == [1, 2, 4]  # capped at 4; the 4th attempt is the last
        assert (status, attempts) == ("failed", 4)
        assert len(hook.requests) == 4
    counts = dispatcher.counts["hook"]
    assert (counts.sent, counts.failed_attempts, counts.given_up) == (0, 4, 1)
    db.close()


def test_a_permanent_refusal_is_not_retried(tmp_path: Path) -> None:
    clock = Clock()
    with receiver(statuses=[404]) as hook:
        config = _config(f'[channels.hook]\ntype = "webhook"\nurl = "{hook.url}"\n')
        db = _queue(tmp_path, config, clock)
        dispatcher = Dispatcher(db, {"hook": build_sender(config.channels["hook"])}, clock=clock)
        dispatcher.deliver_due()
    assert _row(db)[:2] == ("failed", 1)
    db.close()


def test_an_unreachable_channel_is_retried(tmp_path: Path) -> None:
    clock = Clock()
    with receiver() as hook:
        url = hook.url  # closed when the block ends: nothing listens there any more
    config = _config(f'[channels.hook]\ntype = "webhook"\nurl = "{url}"\ntimeout = 2\n')
    db = _queue(tmp_path, config, clock)
    dispatcher = Dispatcher(db, {"hook": build_sender(config.channels["hook"])}, clock=clock)
    dispatcher.deliver_due()
    status, attempts, next_at, error = _row(db)
    assert (status, attempts, next_at) == ("pending", 1, T0 + 5)
    assert "Connection refused" in error or "URLError" in error
    db.close()


def test_the_log_holds_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HOOK_URL", "http://127.0.0.1:1/hook?token=TOPSECRET")
    config = _config('[channels.hook]\ntype = "webhook"\nurl_env = "TEST_HOOK_URL"\ntimeout = 2\n')
    clock = Clock()
    db = _queue(tmp_path, config, clock)
    Dispatcher(db, {"hook": build_sender(config.channels["hook"])}, clock=clock).deliver_due()
    db.close()
    with sqlite3.connect(tmp_path / "e.db") as conn:
        dump = "\n".join(conn.iterdump())
    assert "alert_notifications" in dump
    assert "TOPSECRET" not in dump


def test_webhook_headers_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HOOK_TOKEN", "Bearer abc")
    with receiver() as hook:
        config = _config(
            f'[channels.hook]\ntype = "webhook"\nurl = "{hook.url}/in"\n'
            'headers = { "X-Team" = "payments" }\n'
            'headers_env = { Authorization = "TEST_HOOK_TOKEN" }\n'
        )
        assert build_sender(config.channels["hook"]).send(_payload(config)).ok
        (request,) = hook.requests
    assert request.headers["Authorization"] == "Bearer abc"
    assert request.headers["X-Team"] == "payments"
    assert request.headers["User-Agent"].startswith("peekapi-otel-alerts/")
    assert request.body == _payload(config)
    assert "Bearer abc" not in repr(config)


def test_telegram_retry_after_from_the_body(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_TG_TOKEN", "1:A")
    clock = Clock()
    with receiver(statuses=[429]) as telegram:
        telegram.error_reply = b'{"ok":false,"error_code":429,"parameters":{"retry_after":42}}'
        config = _config(
            '[channels.hook]\ntype = "telegram"\ntoken_env = "TEST_TG_TOKEN"\n'
            f'chat_id = 7\nbase_url = "{telegram.url}"\n'
        )
        db = _queue(tmp_path, config, clock)
        Dispatcher(db, {"hook": build_sender(config.channels["hook"])}, clock=clock).deliver_due()
    assert _row(db)[:3] == ("pending", 1, T0 + 42)
    db.close()


@pytest.mark.parametrize(
    ("url", "retryable"),
    [
        ("TOPSECRET-not-a-url", False),
        ("ftp://TOPSECRET/x", False),
        ("http://127.0.0.1:port/TOPSECRET", False),
        ("http://127.0.0.1:1/TOPSECRET", True),  # nothing listens there: worth retrying
    ],
)
def test_a_bad_url_from_the_environment_is_not_quoted(
    monkeypatch: pytest.MonkeyPatch, url: str, retryable: bool
) -> None:
    monkeypatch.setenv("TEST_SLACK_URL", url)
    config = _config('[channels.slack]\ntype = "slack"\nurl_env = "TEST_SLACK_URL"\ntimeout = 5\n')
    outcome = build_sender(config.channels["slack"]).send(_payload(config))
    assert (outcome.ok, outcome.retryable) == (False, retryable)
    assert outcome.error is not None
    assert "TOPSECRET" not in outcome.error
