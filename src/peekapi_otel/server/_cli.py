"""The ``peekapi-otel`` command: argument parsing and dispatch to one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import os
import sqlite3
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from peekapi_otel.server._ingest import (
    API_KEY_ENV,
    DEFAULT_DB,
    DEFAULT_HOST,
    DEFAULT_MAX_BODY,
    DEFAULT_PORT,
)

if TYPE_CHECKING:
    from peekapi_otel.server.alerts import AlertsConfig

PROG = "peekapi-otel"
_PG_EXTRA = "pip install 'peekapi-otel[postgres]'"

# Implemented elsewhere and imported only when chosen, so one unfinished or broken
# subcommand never takes the others down.
_DELEGATED = {
    "demo": "peekapi_otel.server._demo",
    "spool": "peekapi_otel.server._spoolcmd",
    "check": "peekapi_otel.server._check",
    "alerts": "peekapi_otel.server.alerts._testcmd",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line instead of argparse's usage dump, which buries the actual problem.
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected 0-65535") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected 0-65535")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 0")
    return value


def _retention(text: str) -> int:
    from peekapi_otel.server.alerts._duration import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds < 60:
        raise argparse.ArgumentTypeError(f"{text!r}: the retention must be at least 1m")
    return seconds


def _query_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--range", choices=("15m", "1h", "24h", "7d"), help="only the last 15m, 1h, 24h or 7d"
    )
    parser.add_argument("--from", dest="from_", metavar="TIME", help="start (ISO 8601 or Unix s)")
    parser.add_argument("--to", metavar="TIME", help="end (ISO 8601 or Unix seconds)")
    parser.add_argument("--method", help="only this HTTP method")
    parser.add_argument("--path", help="only this endpoint (as listed, e.g. /items/{id})")
    parser.add_argument("--status", metavar="CLASS", help="only this status class: 2xx..5xx")
    parser.add_argument("--consumer", help="only this consumer ('(anonymous)' for none)")


def query_params(args: argparse.Namespace) -> dict[str, str]:
    """The query-string form of the range and filter options (what the dashboard links)."""
    names = {"range": "range", "from_": "from", "to": "to", "method": "method"}
    names.update(path="path", status="status", consumer="consumer")
    return {key: getattr(args, attr) for attr, key in names.items() if getattr(args, attr)}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="PeekAPI analytics from OpenTelemetry: local tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run a local PeekAPI-compatible ingest with a live dashboard",
        description="Accept PeekAPI event batches on POST /v1/events, store them in SQLite "
        "and serve a live dashboard at /.",
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help="address to bind (%(default)s)")
    serve.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help="port, 0 for any free one (%(default)s)"
    )
    serve.add_argument(
        "--db",
        default=DEFAULT_DB,
        help="SQLite file, or a postgresql:// URL (the [postgres] extra) (%(default)s)",
    )
    serve.add_argument(
        "--db-wait",
        type=_positive,
        default=60,
        metavar="SECONDS",
        help="with PostgreSQL: how long to keep trying to reach it at start (%(default)s)",
    )
    keys = serve.add_mutually_exclusive_group()
    keys.add_argument(
        "--api-key",
        help=f"require this x-api-key on every POST (visible in ps: prefer --api-key-file "
        f"or {API_KEY_ENV}); without any of them every key is accepted",
    )
    keys.add_argument(
        "--api-key-file", metavar="FILE", help="read the required x-api-key from FILE"
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name the dashboard answers to besides localhost and IP addresses "
        "(repeatable; a defence against DNS rebinding)",
    )
    serve.add_argument(
        "--max-body",
        type=_positive,
        default=DEFAULT_MAX_BODY,
        metavar="BYTES",
        help="largest accepted body, also after gzip decompression (%(default)s)",
    )
    serve.add_argument("--alerts", metavar="FILE", help="evaluate the alert rules in FILE (TOML)")
    serve.add_argument(
        "--retention",
        type=_retention,
        metavar="DURATION",
        help="delete raw events older than DURATION (e.g. 30d, 12h) by event time; the "
        "per-minute/hour/day rollups keep every view's figures (default: keep all)",
    )

    report = sub.add_parser(
        "report",
        help="print endpoint, consumer and latency tables from the database",
        description="Print the dashboard's tables from a database written by serve.",
    )
    report.add_argument(
        "--db", default=DEFAULT_DB, help="SQLite file, or a postgresql:// URL (%(default)s)"
    )
    _query_options(report)
    report.add_argument(
        "--latest",
        type=_non_negative,
        default=20,
        metavar="N",
        help="how many of the latest requests to list (%(default)s)",
    )

    demo = sub.add_parser(
        "demo",
        help="show the whole pipeline working: ingest, instrumented app, traffic, report",
        description="Start serve, run an example app under opentelemetry-instrument, drive "
        "traffic through an ingest outage and recovery, and print the report.",
    )
    demo.add_argument(
        "--requests", type=_positive, default=2000, help="requests to send (%(default)s)"
    )
    demo.add_argument("--keep", action="store_true", help="keep the database and logs afterwards")
    demo.add_argument(
        "--serve",
        action="store_true",
        help="keep the dashboard open on the demo's data until Ctrl-C",
    )

    spool = sub.add_parser(
        "spool",
        help="show events waiting in the disk spool",
        description="Show the segments, events, bytes and age of the disk spool.",
    )
    spool.add_argument("--path", metavar="DIR", help="spool directory (the configured one)")
    spool.add_argument("--drain", action="store_true", help="send the spooled events now")
    spool.add_argument(
        "--to-current",
        action="store_true",
        help="with --drain: send events spooled for another endpoint or API key (after a "
        "pause for a redirect or a rejected key) with the current PEEKAPI_ENDPOINT and key",
    )

    sub.add_parser(
        "check",
        help="validate the configuration this process would get",
        description="Validate the PEEKAPI_* configuration and say what will happen.",
    )

    alerts = sub.add_parser("alerts", help="alert rules: send a test notification")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    alerts_test = alerts_sub.add_parser(
        "test",
        help="send a test notification for RULE to its channels",
        description="Send a test notification for RULE to each of its channels, now.",
    )
    alerts_test.add_argument("rule", metavar="RULE", help="the rule's name")
    alerts_test.add_argument("--alerts", metavar="FILE", required=True, help="the alerts file")
    return parser


def _api_key(args: argparse.Namespace) -> tuple[str | None, str]:
    """The key serve requires and where it came from: option, file, environment, or none."""
    if args.api_key is not None:
        key, source = args.api_key, "--api-key"
    elif args.api_key_file is not None:
        source = f"--api-key-file {args.api_key_file}"
        try:
            with open(args.api_key_file, encoding="utf-8") as file:
                key = file.read(4096).strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read --api-key-file {args.api_key_file!r}: {exc}") from None
    else:
        key, source = os.environ.get(API_KEY_ENV, "").strip(), API_KEY_ENV
        if not key:
            return None, ""
    if not key or "\n" in key or not key.isprintable():
        raise ValueError(f"the API key from {source} must be one non-empty line of text")
    return key, source


def _serve_settings(args: argparse.Namespace) -> tuple[AlertsConfig | None, str | None, str] | None:
    """The alert rules and the ingest key ``serve`` starts with, on either backend;
    ``None`` (the reason printed) when one of them is unusable."""
    from peekapi_otel.server.alerts import AlertsFileError, load_alerts

    try:
        alerts = None if args.alerts is None else load_alerts(args.alerts)
        api_key, source = _api_key(args)
    except (AlertsFileError, ValueError) as exc:
        print(f"{PROG} serve: {exc}", file=sys.stderr)
        return None
    return alerts, api_key, source


def _serve_postgres(args: argparse.Namespace) -> int:
    """``serve --db postgresql://...``: the same ingest, writing PostgreSQL."""
    try:
        from peekapi_otel.server.db._backend import StoreUnavailable
        from peekapi_otel.server.db._pg_serve import serve_postgres
    except ImportError as exc:
        print(
            f"{PROG} serve: PostgreSQL needs psycopg 3: {_PG_EXTRA} ({exc})",
            file=sys.stderr,
        )
        return 2
    settings = _serve_settings(args)
    if settings is None:
        return 2
    alerts, api_key, source = settings
    try:
        return serve_postgres(
            args.db,
            args.host,
            args.port,
            api_key=api_key,
            max_body=args.max_body,
            allowed_hosts=tuple(args.allow_host),
            key_source=source,
            db_wait=float(args.db_wait),
            alerts=alerts,
            retention=args.retention,
        )
    except OSError as exc:
        print(f"{PROG} serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
    except StoreUnavailable as exc:
        print(f"{PROG} serve: {exc}", file=sys.stderr)
    return 1


def _serve(args: argparse.Namespace) -> int:
    if args.db.startswith(("postgresql://", "postgres://")):
        return _serve_postgres(args)
    from peekapi_otel.server._run import serve

    settings = _serve_settings(args)
    if settings is None:
        return 2
    alerts, api_key, source = settings
    try:
        return serve(
            args.host,
            args.port,
            args.db,
            api_key=api_key,
            max_body=args.max_body,
            allowed_hosts=tuple(args.allow_host),
            key_source=source,
            alerts=alerts,
            retention=args.retention,
        )
    except OSError as exc:
        print(f"{PROG} serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
    except sqlite3.Error as exc:
        print(f"{PROG} serve: cannot open database {args.db!r}: {exc}", file=sys.stderr)
    return 1


def _report(args: argparse.Namespace) -> int:
    from peekapi_otel.server._query import BadQuery, parse_query
    from peekapi_otel.server._report import report
    from peekapi_otel.server._store import StoreMissing
    from peekapi_otel.server.db._backend import StoreUnavailable

    try:
        query = parse_query(query_params(args))
        report(args.db, sys.stdout, latest=args.latest, query=query)
    except (BadQuery, ImportError) as exc:
        reason = f"PostgreSQL needs psycopg 3: {_PG_EXTRA} ({exc})"
        print(f"{PROG} report: {exc if isinstance(exc, BadQuery) else reason}", file=sys.stderr)
        return 2
    except (StoreMissing, StoreUnavailable) as exc:
        print(f"{PROG} report: {exc}", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:
        print(f"{PROG} report: cannot read {args.db!r}: {exc}", file=sys.stderr)
        return 1
    return 0


def _delegate(args: argparse.Namespace) -> int:
    try:
        run = importlib.import_module(_DELEGATED[args.command]).run
    except (ImportError, AttributeError) as exc:
        print(f"{PROG} {args.command}: not available yet ({exc})", file=sys.stderr)
        return 2
    return int(run(args) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``peekapi-otel`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(args)
    if args.command == "report":
        return _report(args)
    return _delegate(args)


if __name__ == "__main__":
    sys.exit(main())
