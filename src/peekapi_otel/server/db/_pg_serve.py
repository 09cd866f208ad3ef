"""``serve --db postgresql://...``: the ingest writing PostgreSQL, one node of a fleet.

At start an unreachable database is retried with a growing pause, each attempt said on
stderr, for at most ``db_wait`` seconds. Once running, a lost database makes the ingest
answer 503 until it is back (see ``_pg_store``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Final, cast

import psycopg

from peekapi_otel.server._ingest import DEFAULT_MAX_BODY, IngestServer
from peekapi_otel.server._run import run_ingest
from peekapi_otel.server.db._backend import StoreUnavailable
from peekapi_otel.server.db._pg_store import PgEventStore, connect, describe

if TYPE_CHECKING:
    from peekapi_otel.server._store import EventStore
    from peekapi_otel.server.alerts import AlertEngine, AlertsConfig

DEFAULT_DB_WAIT: Final = 60.0
"""Seconds ``serve`` keeps trying to reach PostgreSQL at start before it gives up."""
LISTEN_WAIT: Final = 15.0
"""Seconds ``serve`` waits at start for the stream of the other nodes' events."""
_FIRST_PAUSE: Final = 1.0
_MAX_PAUSE: Final = 15.0


def is_postgres_url(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


def connect_with_retry(
    url: str,
    wait: float = DEFAULT_DB_WAIT,
    *,
    out: IO[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> psycopg.Connection[Any]:
    """A connection to ``url``, retried with backoff for up to ``wait`` seconds.

    Raises :class:`StoreUnavailable` with the last reason when the time is up, and at
    once for a URL libpq cannot parse.
    """
    out = sys.stderr if out is None else out
    where = describe(url)
    deadline = clock() + wait
    pause = _FIRST_PAUSE
    attempt = 0
    while True:
        attempt += 1
        try:
            return connect(url, timeout=max(1.0, min(5.0, deadline - clock())))
        except psycopg.ProgrammingError as exc:
            raise StoreUnavailable(f"invalid PostgreSQL URL: {exc}") from None
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            left = deadline - clock()
            if left <= 0:
                raise StoreUnavailable(
                    f"cannot reach PostgreSQL at {where} after {attempt} attempts "
                    f"in {wait:g}s: {reason}"
                ) from None
            pause = min(pause, left)
            print(
                f"peekapi-otel serve: cannot reach PostgreSQL at {where} ({reason}); "
                f"retrying in {pause:g}s",
                file=out,
                flush=True,
            )
            sleep(pause)
            pause = min(pause * 2, _MAX_PAUSE)


def serve_postgres(
    url: str,
    host: str,
    port: int,
    *,
    api_key: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    allowed_hosts: tuple[str, ...] = (),
    key_source: str = "--api-key",
    db_wait: float = DEFAULT_DB_WAIT,
    alerts: AlertsConfig | None = None,
    retention: int | None = None,
) -> int:
    """Run the ingest on PostgreSQL until SIGTERM or SIGINT; returns the exit code.

    Prints the same start line as the SQLite ``serve``, with the database as
    ``user@host:port/dbname`` (never the password).
    """
    store = PgEventStore(url, connection=connect_with_retry(url, db_wait))
    try:
        # The PostgreSQL store answers every call the ingest and the dashboard make.
        server = IngestServer(
            (host, port),
            cast("EventStore", store),
            api_key=api_key,
            max_body=max_body,
            allowed_hosts=allowed_hosts,
        )
        # The dashboard's stream shows the events every node stores.
        store.listen(wait=LISTEN_WAIT)
    except BaseException:
        store.close()
        raise

    def alert_engine(dashboard: str) -> AlertEngine | None:
        return None if alerts is None else _alert_engine(alerts, url, dashboard)

    return run_ingest(
        server,
        cast("EventStore", store),
        host=host,
        db_label=f"postgresql {store.where}",
        key_source=key_source,
        retention=retention,
        alert_engine=alert_engine,
    )


def _alert_engine(config: AlertsConfig, url: str, dashboard: str) -> AlertEngine:
    """The alert engine on the fleet's database, evaluating only while this node leads."""
    from peekapi_otel.server.alerts import AlertEngine
    from peekapi_otel.server.db._pg_alerts import PgAlertDatabase, PgMetrics
    from peekapi_otel.server.db._pg_leader import AdvisoryLeader

    leader = AdvisoryLeader(url)
    try:
        return AlertEngine(
            config,
            url,
            dashboard=dashboard,
            metrics=PgMetrics(url),
            database=PgAlertDatabase(url, leader.is_leader),
            leader=leader.is_leader,
        )
    except psycopg.Error as exc:
        raise StoreUnavailable(f"cannot set up the alert tables: {str(exc).strip()}") from None
