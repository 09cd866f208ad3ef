"""``serve --db postgresql://...``: the ingest writing PostgreSQL, one node of a fleet.

At start an unreachable database is retried with a growing pause, each attempt said on
stderr, for at most ``db_wait`` seconds. Once running, a lost database makes the ingest
answer 503 until it is back (see ``_pg_store``).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, Final, cast

import psycopg

from peekapi_otel.server._ingest import API_KEY_ENV, DEFAULT_MAX_BODY, IngestServer, _log_to_stderr
from peekapi_otel.server.db._backend import StoreUnavailable
from peekapi_otel.server.db._pg_store import PgEventStore, connect, describe

if TYPE_CHECKING:
    from peekapi_otel.server._retention import Retention
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
    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, name="peekapi-ingest-stop").start()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    handler = _log_to_stderr()
    url_host = f"[{host}]" if ":" in host else host
    if api_key is None:
        print(
            "peekapi-otel serve: no API key set, so any x-api-key (or none) is accepted; "
            f"require one with --api-key-file FILE or {API_KEY_ENV}",
            file=sys.stderr,
            flush=True,
        )
    else:
        print(f"peekapi-otel serve: x-api-key required (from {key_source})", file=sys.stderr)
    engine: AlertEngine | None = None
    keeper: Retention | None = None
    try:
        if retention is not None:
            from peekapi_otel.server._retention import Retention

            keeper = Retention(cast("EventStore", store), retention)
            keeper.start()
        if alerts is not None:
            engine = _alert_engine(alerts, url, f"http://{url_host}:{server.server_address[1]}")
            server.alerts = engine
            engine.start()
        print(
            f"peekapi-otel ingest listening on http://{url_host}:{server.server_address[1]} "
            f"(db postgresql {store.where})",
            flush=True,
        )
        server.serve_forever(poll_interval=0.2)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        server.stream.close()
        if keeper is not None:
            keeper.stop()
        server.server_close()
        if engine is not None:
            engine.stop()
        store.close()
        server.refusals.flush(force=True)
        if handler is not None:
            logging.getLogger("peekapi_otel.server").removeHandler(handler)
    print("peekapi-otel ingest stopped", file=sys.stderr, flush=True)
    return 0


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
