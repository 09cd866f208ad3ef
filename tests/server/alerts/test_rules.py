"""The alerts file: a complete file is read as written; each mistake names its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from peekapi_otel.server.alerts import AlertsFileError, load_alerts
from peekapi_otel.server.alerts._rules import parse_alerts

COMPLETE = """\
[settings]
interval = "30s"
dashboard_url = "https://peek.example.com/"

[channels.hook]
type = "webhook"
url = "https://hooks.example.com/peekapi"
headers = { "X-Team" = "payments" }

[channels.slack]
type = "slack"
url_env = "SLACK_WEBHOOK_URL"

[channels.discord]
type = "discord"
url_env = "DISCORD_WEBHOOK_URL"

[channels.telegram]
type = "telegram"
token_env = "TELEGRAM_BOT_TOKEN"
chat_id = -1001234

[channels.mail]
type = "email"
host = "smtp.example.com"
username = "alerts@example.com"
password_env = "SMTP_PASSWORD"
from = "alerts@example.com"
to = ["oncall@example.com"]

[[rules]]
name = "checkout-5xx"
kind = "error_rate"
endpoint = "post /checkout"
threshold = 5
window = "5m"
min_requests = 20
for = "1m"
keep_firing_for = "2m"
repeat_interval = "1h"
channels = ["hook", "slack"]
labels = { severity = "page" }

[[rules]]
name = "search-p95"
kind = "latency"
stat = "p95"
path = "/search/*"
threshold = 800.0
window = "10m"

[[rules]]
name = "traffic-drop"
kind = "volume"
direction = "drop"
threshold = 50
window = "15m"
min_requests = 100

[[rules]]
name = "acme-silent"
kind = "inactivity"
consumer = "acme"
window = "30m"
channels = "mail"
"""


def test_a_complete_file_is_read_as_written() -> None:
    config = parse_alerts(COMPLETE)
    assert config.interval == 30
    assert config.dashboard_url == "https://peek.example.com"
    assert [r.name for r in config.rules] == [
        "checkout-5xx",
        "search-p95",
        "traffic-drop",
        "acme-silent",
    ]
    checkout, search, drop, silent = config.rules
    assert checkout.selector.method == "POST"
    assert checkout.selector.path == "/checkout"
    assert (checkout.threshold, checkout.window, checkout.min_requests) == (5.0, 300, 20)
    assert (checkout.for_, checkout.keep_firing_for, checkout.repeat_interval) == (60, 120, 3600)
    assert checkout.channels == ("hook", "slack")
    assert checkout.labels == {"severity": "page"}
    assert (search.stat, search.selector.path, search.for_) == ("p95", "/search/*", 0)
    # No channels given: every channel.
    assert search.channels == ("hook", "slack", "discord", "telegram", "mail")
    assert (drop.direction, drop.threshold) == ("drop", 50.0)
    assert silent.selector.consumer == "acme"
    assert silent.threshold is None
    assert silent.channels == ("mail",)
    assert config.channels["slack"].secrets == {"url": "SLACK_WEBHOOK_URL"}
    assert "url" not in config.channels["slack"].settings
    assert config.channels["telegram"].settings["base_url"] == "https://api.telegram.org"
    mail = config.channels["mail"].settings
    assert (mail["security"], mail["port"]) == ("starttls", 587)


def _error(text: str) -> AlertsFileError:
    with pytest.raises(AlertsFileError) as info:
        parse_alerts(text, "alerts.toml")
    return info.value


def _rule(body: str) -> str:
    return '[channels.hook]\ntype = "webhook"\nurl = "http://127.0.0.1:1/"\n\n[[rules]]\n' + body


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        # TOML syntax: the parser's own line.
        ('[[rules]]\nname = "a"\nkind = error_rate\n', 3, "invalid TOML"),
        ('[settings]\ninterval = "1m"\n[settings]\n', 3, "invalid TOML"),
        # Values: the key's line inside the right [[rules]] table.
        (
            _rule(
                'name = "a"\nkind = "error_rate"\nthreshold = 5\nwindow = "5m"\n\n[[rules]]\n'
                'name = "b"\nkind = "errors"\n'
            ),
            13,
            "rule 'b': kind must be one of error_rate, latency, volume, inactivity",
        ),
        (_rule('name = "a"\nkind = "latency"\nwindow = "5m"\n'), 5, "missing threshold"),
        (
            _rule('name = "a"\nkind = "latency"\nthreshold = 1\nwindow = "five"\n'),
            9,
            "window: 'five' is not a duration",
        ),
        (
            _rule('name = "a"\nkind = "error_rate"\nthreshold = 120\nwindow = "5m"\n'),
            8,
            "a percentage, 0-100",
        ),
        (
            _rule(
                'name = "a"\nkind = "latency"\nthreshold = 1\nwindow = "1m"\nchannels = ["pager"]\n'
            ),
            10,
            "no channel named 'pager'",
        ),
        (
            _rule('name = "a"\nkind = "latency"\nthreshold = 1\nwindow = "1m"\nthresold = 2\n'),
            10,
            "unknown setting 'thresold'",
        ),
        (
            _rule('name = "a"\nkind = "inactivity"\nwindow = "1m"\nthreshold = 2\n'),
            9,
            "an inactivity rule has no threshold",
        ),
        (
            _rule('name = "a"\nkind = "latency"\nthreshold = 1\nwindow = "1m"\nstatuses = "5xx"\n'),
            10,
            "statuses does not apply to a latency rule",
        ),
        (
            _rule(
                'name = "a"\nkind = "latency"\nthreshold = 1\nwindow = "1m"\n\n[[rules]]\n'
                'name = "a"\nkind = "latency"\nthreshold = 1\nwindow = "1m"\n'
            ),
            12,
            "another rule has this name",
        ),
        (
            _rule(
                'name = "a"\nkind = "error_rate"\nthreshold = 1\nwindow = "1m"\n'
                'endpoint = "/checkout"\n'
            ),
            10,
            'endpoint is "METHOD /path"',
        ),
        # Channels.
        ('[channels.slack]\ntype = "slack"\n', 1, "channel 'slack': missing url (or url_env)"),
        (
            '[channels.t]\ntype = "telegram"\ntoken_env = "T"\nchat_id = 1\nbase_url = "ftp://x"\n',
            5,
            "base_url must be an http:// or https:// URL",
        ),
        (
            '[channels.m]\ntype = "email"\nhost = "h"\nfrom = "a@b"\nto = ["c@d"]\n'
            'security = "tls"\n',
            6,
            "security must be one of starttls, ssl, none",
        ),
        ('[channels.x]\ntype = "pager"\n', 2, "type must be one of webhook, slack"),
        ('[channels.x]\nurl = "https://x"\n', 1, "missing type (one of webhook, slack"),
        ('\n[[rules]]\nname = "a"\nwindow = "1m"\n', 2, "rule 'a': missing kind (one of"),
        ('[settings]\ninterval = "0s"\n', 2, "interval must be at least 1s"),
    ],
)
def test_each_mistake_names_its_line_and_reason(text: str, line: int, reason: str) -> None:
    error = _error(text)
    assert error.line == line, str(error)
    assert reason in error.reason
    assert str(error).startswith(f"alerts.toml:{line}: ")


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(AlertsFileError, match="cannot read the alerts file"):
        load_alerts(tmp_path / "nope.toml")


def test_secrets_named_by_environment_variable_are_not_in_the_config() -> None:
    config = parse_alerts(COMPLETE)
    assert config.channels["mail"].secrets == {"password": "SMTP_PASSWORD"}
    assert "password" not in config.channels["mail"].settings
    with pytest.raises(AlertsFileError, match="give url or url_env, not both"):
        parse_alerts('[channels.s]\ntype = "slack"\nurl = "https://x"\nurl_env = "X"\n')


def test_the_readme_example_is_a_valid_file() -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    section = readme.split("### The alerts file", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    config = parse_alerts(example, "README.md")
    assert {r.kind for r in config.rules} == {"error_rate", "latency", "volume", "inactivity"}
    assert {c.type for c in config.channels.values()} == {
        "webhook",
        "slack",
        "discord",
        "telegram",
        "email",
    }
