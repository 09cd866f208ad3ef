"""``peekapi-otel alerts test RULE --alerts FILE``: send a test notification now."""

from __future__ import annotations

import argparse
import sys
import time

from peekapi_otel.server.alerts._channels import build_sender
from peekapi_otel.server.alerts._payload import build_payload
from peekapi_otel.server.alerts._rules import AlertsFileError, load_alerts
from peekapi_otel.server.alerts._state import AlertState

DEFAULT_DASHBOARD = "http://127.0.0.1:8787"


def run(args: argparse.Namespace) -> int:
    """Send to each channel of the rule once; exit 0 when every channel took it."""
    prog = "peekapi-otel alerts test"
    try:
        config = load_alerts(args.alerts)
    except AlertsFileError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    rule = config.rule(args.rule)
    if rule is None:
        names = ", ".join(r.name for r in config.rules) or "none"
        print(f"{prog}: no rule named {args.rule!r} (rules: {names})", file=sys.stderr)
        return 2
    if not rule.channels:
        print(f"{prog}: rule {rule.name!r} has no channels", file=sys.stderr)
        return 2
    now = time.time()
    payload = build_payload(
        rule,
        AlertState(),
        "test",
        dashboard=config.dashboard_url or DEFAULT_DASHBOARD,
        now=now,
    )
    failed = 0
    for name in rule.channels:
        channel = config.channels[name]
        outcome = build_sender(channel).send(payload)
        if outcome.ok:
            print(f"{rule.name} -> {name} ({channel.type}): sent")
        else:
            failed += 1
            print(f"{rule.name} -> {name} ({channel.type}): failed: {outcome.error}")
    return 1 if failed else 0
