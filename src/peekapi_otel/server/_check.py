"""``peekapi-otel check``: the configuration this environment gives, and what will happen."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from peekapi_otel.core._endpoint import mask_url
from peekapi_otel.core._options import Options, mask_secret
from peekapi_otel.delivery._retry import DECISION_TABLE, Decision, Outcome, decide
from peekapi_otel.delivery._transport import HttpTransport
from peekapi_otel.server._text import printable


def _value(name: str, value: object) -> str:
    if name == "api_key":
        return mask_secret(str(value))
    if name == "endpoint" and not value:
        return "(refused: see the verdict below)"
    if name == "consumer_headers" and isinstance(value, tuple):
        return ",".join(value)
    return "(default)" if value is None else str(value)


def probe_answer(options: Options) -> tuple[Decision, str]:
    """POST an empty batch: the cheapest request that shows the ingest and the key work.

    Returns the decision-table row for the answer, and the answer as a user reads it.
    """
    transport = HttpTransport(options.endpoint, options.api_key, compression=options.compression)
    try:
        result = transport.send(b"[]", options.timeout)
    finally:
        transport.close()
    decision = decide(result.status)
    if decision.outcome is Outcome.OK:
        return decision, f"answers {result.status}: it accepts this API key"
    if result.status is None:
        return decision, f"does not answer: {printable(str(result.error))}"
    if result.status in (401, 403):
        return decision, f"answers {result.status}: it rejects this API key"
    if 300 <= result.status < 400:
        location = printable(mask_url(str(result.location)))
        return decision, (
            f"answers {result.status} (redirect to {location}); redirects are never "
            "followed: use the final URL"
        )
    return decision, f"answers {result.status}: {printable(result.excerpt.strip()[:120])}"


def _probe(options: Options) -> tuple[bool, str]:
    """Whether the ingest accepts, and its answer as a user reads it (``spool --drain``)."""
    decision, answer = probe_answer(options)
    return decision.outcome is Outcome.OK, answer


def _decision_lines(current: Decision) -> list[str]:
    """The decision table, the row this ingest's answer falls in marked with ``>``."""
    lines = ["what the exporter does with each answer:"]
    for row in DECISION_TABLE:
        mark = ">" if row is current else " "
        lines.append(f" {mark} {row.answers:<40} {row.action}")
    return lines


def _resolve() -> Options:
    # Options logs each bad value as a warning too; check prints them itself, once.
    logger = logging.getLogger("peekapi_otel")
    quiet = logging.NullHandler()
    saved = logger.propagate
    logger.addHandler(quiet)
    logger.propagate = False
    try:
        return Options.from_env()
    finally:
        logger.removeHandler(quiet)
        logger.propagate = saved


def run(args: argparse.Namespace) -> int:
    options = _resolve()
    print("Configuration (argument > PEEKAPI_* environment > default):")
    for field in dataclasses.fields(Options):
        if field.name in ("identify_consumer", "on_error", "warnings", "endpoint_error"):
            continue
        print(f"  {field.name:<22} {_value(field.name, getattr(options, field.name))}")
    for warning in options.warnings:
        print(f"warning: {warning}")
    problem = options.problem
    if problem is not None:
        print(f"verdict: {problem}")
        return 1
    print(f"endpoint: {options.endpoint} is allowed")
    decision, answer = probe_answer(options)
    print(f"ingest:   {answer}")
    spool = options.spool_dir()
    print(
        f"events:   sent in batches of {options.batch_size} at least every "
        f"{options.flush_interval:g} s; the spool is {spool} "
        f"(up to {options.max_storage_bytes} bytes, oldest evicted first)"
    )
    for line in _decision_lines(decision):
        print(line)
    if decision.outcome is not Outcome.OK:
        print(f"verdict: not ready (the answer is {decision.answers}): {decision.action}")
        return 1
    print("verdict: ready")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(argparse.Namespace()))
