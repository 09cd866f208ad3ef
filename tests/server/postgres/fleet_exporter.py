"""An app's delivery pipeline sending request events to one ``serve`` node: about RATE
events a second for SECONDS, each event's (trace_id, span_id) written to KEYS, then a
flush that waits for every event to be acknowledged. Run by the fleet test."""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "delivery"))

from support import key_of, make_span, options  # type: ignore[import-not-found]

from peekapi_otel.core._record import record_of_span
from peekapi_otel.core._stats import stats
from peekapi_otel.delivery._pipeline import Pipeline
from peekapi_otel.delivery._retry import RetryPolicy


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint")
    parser.add_argument("--keys", type=Path, required=True)
    parser.add_argument("--spool", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    policy = RetryPolicy(base=0.05, cap=0.5, rng=random.Random(1))
    pipeline = Pipeline(
        options(args.endpoint, args.spool, shutdown_timeout=60.0),
        policy=policy,
        recovery_interval=0.5,
    )
    print("started", flush=True)
    lines = []
    start = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - start) < args.seconds:
        # Paced in steps of 10 ms; on a loaded machine it sends what it can.
        due = int(elapsed * args.rate) + 1
        while sent < due:
            span = make_span()
            pipeline.submit(record_of_span(span))
            lines.append("{} {}\n".format(*key_of(span)))
            sent += 1
        time.sleep(0.01)
    args.keys.write_text("".join(lines))
    ok = pipeline.force_flush(120)
    print("flushed " + json.dumps({**stats(), "ok": ok, "sent": sent}), flush=True)
    pipeline.shutdown(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
