"""A process competing for the alert evaluator's advisory lock: prints ``leader`` or
``standby`` each time its role changes, and asks every 0.1 s. Run by the failover test."""

from __future__ import annotations

import sys
import time

from peekapi_otel.server.db._pg_leader import AdvisoryLeader


def main(url: str) -> None:
    leader = AdvisoryLeader(url)
    role = ""
    while True:
        now = "leader" if leader.is_leader() else "standby"
        if now != role:
            role = now
            print(role, flush=True)
        time.sleep(0.1)


if __name__ == "__main__":
    main(sys.argv[1])
