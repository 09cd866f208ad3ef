"""The email channel: stdlib ``smtplib`` with STARTTLS (default), implicit TLS or none."""

from __future__ import annotations

import smtplib
import ssl
from email import policy
from email.message import EmailMessage
from typing import Any

from peekapi_otel.server.alerts._channels import Outcome, secret
from peekapi_otel.server.alerts._payload import text
from peekapi_otel.server.alerts._rules import Channel

# Folding a long subject at 78 columns puts a line break right after "Subject:", which
# mail clients show as a leading space; 998 is the hard limit of RFC 5322.
_POLICY = policy.SMTP.clone(max_line_length=998)


def email_message(payload: dict[str, Any], sender: str, to: list[str]) -> EmailMessage:
    message = EmailMessage(policy=_POLICY)
    message["Subject"] = payload["summary"]
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["X-PeekAPI-Alert"] = f"{payload['rule']}; state={payload['state']}"
    message.set_content(text(payload))
    return message


class EmailSender:
    """One message per notification to every address in ``to``."""

    def __init__(self, channel: Channel, *, tls_context: ssl.SSLContext | None = None) -> None:
        self.channel = channel
        # Tests pass a context that trusts their own certificate; the default verifies.
        self.tls_context = tls_context

    def send(self, payload: dict[str, Any]) -> Outcome:
        settings = self.channel.settings
        username = secret(self.channel, "username")
        password = secret(self.channel, "password")
        message = email_message(payload, settings["from"], settings["to"])
        context = self.tls_context or ssl.create_default_context()
        host, port, timeout = settings["host"], settings["port"], settings["timeout"]
        try:
            client: smtplib.SMTP
            if settings["security"] == "ssl":
                client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
            else:
                client = smtplib.SMTP(host, port, timeout=timeout)
            with client:
                if settings["security"] == "starttls":
                    client.starttls(context=context)
                if username is not None and password is not None:
                    client.login(username, password)
                refused = client.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            return Outcome(False, f"SMTP authentication refused ({exc.smtp_code})", retryable=False)
        except smtplib.SMTPRecipientsRefused as exc:
            return Outcome(False, f"SMTP refused every recipient: {sorted(exc.recipients)}")
        except smtplib.SMTPResponseException as exc:
            # 5xx is a permanent refusal; 4xx a temporary one worth retrying.
            return Outcome(False, f"SMTP {exc.smtp_code}", retryable=exc.smtp_code < 500)
        except (smtplib.SMTPException, OSError) as exc:
            return Outcome(False, f"{type(exc).__name__}: {exc}")
        if refused:
            return Outcome(True, f"some recipients refused: {sorted(refused)}")
        return Outcome(True)
