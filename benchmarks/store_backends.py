"""Events per second into ``serve`` on SQLite and on PostgreSQL, side by side.

    python benchmarks/store_backends.py            # 5 rounds of 20,000 events each
    python benchmarks/store_backends.py --rounds 9 --events 50000 --clients 8

Each backend gets one ``peekapi-otel serve`` process (SQLite in a temporary file;
PostgreSQL a throwaway cluster from Debian's packages, started as the tests do, with
fsync on). Client threads POST batches of 100 distinct events over keep-alive
connections; a round ends when every batch is acknowledged. The backends alternate round
by round (the order rotates) so a noisy machine slows both alike; the table shows the
median events/s with [p25, p75]. Each round checks that the database holds exactly the
events sent.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pg import PostgresServer, missing_reason

START_LINE = re.compile(r"^peekapi-otel ingest listening on http://127\.0\.0\.1:(\d+) ")
BATCH = 100


def _batches(total: int) -> list[bytes]:
    run = uuid.uuid4().hex
    out = []
    for start in range(0, total, BATCH):
        events = [
            {
                "method": "GET",
                "path": f"/items/{{id}}/{i % 20}",
                "status_code": 200 if i % 17 else 500,
                "response_time_ms": 1.0 + i % 50,
                "request_size": 0,
                "response_size": 120,
                "consumer_id": f"c{i % 30}",
                "metadata": {"trace_id": f"{run}{i:08x}"[:32], "span_id": f"{i:016x}"},
                "timestamp": "2026-12-03T08:00:00+00:00",
            }
            for i in range(start, min(start + BATCH, total))
        ]
        out.append(json.dumps(events).encode())
    return out


class Serve:
    def __init__(self, db: str) -> None:
        script = str(Path(sys.executable).parent / "peekapi-otel")
        self.proc = subprocess.Popen(
            [script, "serve", "--port", "0", "--db", db],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        match = START_LINE.match(self.proc.stdout.readline()) if ready else None
        if match is None:
            self.proc.kill()
            raise RuntimeError(f"serve --db {db} did not start")
        self.port = int(match.group(1))

    def count(self) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("GET", "/api/summary")
        requests = int(json.loads(conn.getresponse().read())["totals"]["requests"])
        conn.close()
        return requests

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def _post_all(port: int, batches: list[bytes], clients: int) -> None:
    errors: list[str] = []

    def client(mine: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for body in mine:
            conn.request("POST", "/v1/events", body, {"Content-Type": "application/json"})
            reply = conn.getresponse()
            reply.read()
            if reply.status != 200:
                errors.append(f"HTTP {reply.status}")
        conn.close()

    threads = [threading.Thread(target=client, args=(batches[i::clients],)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} batches refused: {errors[0]}")


def _quartiles(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return f"{statistics.median(values):>9,.0f} [{q[0]:,.0f}, {q[2]:,.0f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=20_000, help="events per round")
    parser.add_argument("--clients", type=int, default=4, help="concurrent senders")
    args = parser.parse_args()
    reason = missing_reason()
    if reason is not None:
        print(f"skipped: {reason}", file=sys.stderr)
        return 1
    pg = PostgresServer(fsync=True)
    pg.start()
    workdir = Path(tempfile.mkdtemp(prefix="peekapi-bench-"))
    serves = {"sqlite": Serve(str(workdir / "events.db")), "postgresql": Serve(pg.url)}
    rates: dict[str, list[float]] = {name: [] for name in serves}
    expected = dict.fromkeys(serves, 0)
    try:
        for round_no in range(args.rounds):
            order = list(serves)[round_no % 2 :] + list(serves)[: round_no % 2]
            for name in order:
                batches = _batches(args.events)
                began = time.perf_counter()
                _post_all(serves[name].port, batches, args.clients)
                rates[name].append(args.events / (time.perf_counter() - began))
                expected[name] += args.events
                stored = serves[name].count()
                if stored != expected[name]:
                    raise RuntimeError(f"{name}: {stored} stored, {expected[name]} sent")
    finally:
        for serve in serves.values():
            serve.stop()
        pg.destroy()
    print(
        f"events/s into serve, {args.rounds} rounds x {args.events:,} events, "
        f"{args.clients} clients, batches of {BATCH}: median [p25, p75]"
    )
    for name, values in rates.items():
        print(f"  {name:<11} {_quartiles(values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
