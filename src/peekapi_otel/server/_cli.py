"""The ``peekapi-otel`` command: argument parsing and dispatch to one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import sqlite3
import sys
from collections.abc import Sequence
from typing import NoReturn

from peekapi_otel.server._ingest import DEFAULT_DB, DEFAULT_HOST, DEFAULT_MAX_BODY, DEFAULT_PORT

PROG = "peekapi-otel"

# Implemented elsewhere and imported only when chosen, so one unfinished or broken
# subcommand never takes the others down.
_DELEGATED = {
    "demo": "peekapi_otel.server._demo",
    "spool": "peekapi_otel.server._spoolcmd",
    "check": "peekapi_otel.server._check",
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
    serve.add_argument("--db", default=DEFAULT_DB, help="SQLite file (%(default)s)")
    serve.add_argument("--api-key", help="require this x-api-key on every POST")
    serve.add_argument(
        "--max-body",
        type=_positive,
        default=DEFAULT_MAX_BODY,
        metavar="BYTES",
        help="largest accepted body, also after gzip decompression (%(default)s)",
    )

    report = sub.add_parser(
        "report",
        help="print endpoint, consumer and latency tables from the SQLite file",
        description="Print the dashboard's tables from a database written by serve.",
    )
    report.add_argument("--db", default=DEFAULT_DB, help="SQLite file (%(default)s)")
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
    return parser


def _serve(args: argparse.Namespace) -> int:
    from peekapi_otel.server._ingest import serve

    try:
        return serve(args.host, args.port, args.db, api_key=args.api_key, max_body=args.max_body)
    except OSError as exc:
        print(f"{PROG} serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
    except sqlite3.Error as exc:
        print(f"{PROG} serve: cannot open database {args.db!r}: {exc}", file=sys.stderr)
    return 1


def _report(args: argparse.Namespace) -> int:
    from peekapi_otel.server._report import report
    from peekapi_otel.server._store import StoreMissing

    try:
        report(args.db, sys.stdout, latest=args.latest)
    except StoreMissing as exc:
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
