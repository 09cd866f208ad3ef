"""One (framework, variant) per process, driven round by round by ``run.py``.

Protocol on stdin/stdout (lines; our replies start with ``@@``):
``run N``  -> drive N requests, then drain (our ``force_flush`` / peekapi's flush loop);
              replies ``@@{"cpu": s, "wall": s, "ok": bool}``. CPU is
              ``time.process_time()`` (all threads of the process), so the background
              batching/sending of what the round produced is included.
``stats``  -> ``@@{...}`` counters (ours: ``peekapi_otel.stats()``).
``quit``   -> shut down and exit.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _apps import build


def reply(obj: object) -> None:
    sys.stdout.write("@@" + json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--framework", required=True)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--ingest", required=True)
    ap.add_argument("--storage", required=True)
    args = ap.parse_args()

    built = build(args.framework, args.variant, args.ingest, args.storage)
    driver, drain = built.driver, built.drain
    reply({"ready": True, **built.info})
    process_time, perf = time.process_time, time.perf_counter
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "run":
            n = int(cmd[1])
            gc.collect()
            c0, w0 = process_time(), perf()
            driver.run(n)
            drain()
            c1, w1 = process_time(), perf()
            ok = driver.ok() if hasattr(driver, "ok") else driver.status == 200
            reply({"cpu": c1 - c0, "wall": w1 - w0, "ok": ok})
        elif cmd[0] == "stats":
            out: dict[str, object] = {}
            if built.processor is not None:
                import peekapi_otel

                snap = peekapi_otel.stats()
                out = {k: snap.get(k) for k in ("seen", "sent", "spooled", "dropped_total")}
            elif built.client is not None:
                c = built.client
                out = {"buffered": len(c._buffer), "in_flight": c._in_flight}
            reply(out)
        elif cmd[0] == "quit":
            if built.processor is not None:
                built.processor.shutdown()
            if built.client is not None:
                built.client.shutdown()
            reply({"bye": True})
            return


if __name__ == "__main__":
    main()
