"""``serve`` on SQLite, and the start and stop every ``serve`` shares whatever its
database: signals, the log handler, the key and start lines, retention, alerts, and the
orderly stop."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from peekapi_otel.server._ingest import (
    API_KEY_ENV,
    DEFAULT_DB,
    DEFAULT_HOST,
    DEFAULT_MAX_BODY,
    DEFAULT_PORT,
    IngestServer,
)
from peekapi_otel.server._store import EventStore

if TYPE_CHECKING:
    from peekapi_otel.server.alerts import AlertEngine, AlertsConfig


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    db: str = DEFAULT_DB,
    *,
    api_key: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    allowed_hosts: tuple[str, ...] = (),
    key_source: str = "--api-key",
    alerts: AlertsConfig | None = None,
    retention: int | None = None,
) -> int:
    """Run the ingest until SIGTERM or SIGINT; returns the process exit code.

    Prints ``peekapi-otel ingest listening on http://HOST:PORT (db FILE)`` once bound, so
    a parent process can read the port chosen for ``port=0``.
    """
    store = EventStore(db)
    try:
        server = IngestServer(
            (host, port), store, api_key=api_key, max_body=max_body, allowed_hosts=allowed_hosts
        )
    except BaseException:
        store.close()
        raise

    def alert_engine(dashboard: str) -> AlertEngine | None:
        if alerts is None:
            return None
        from peekapi_otel.server.alerts import AlertEngine

        return AlertEngine(alerts, db, dashboard=dashboard)

    return run_ingest(
        server,
        store,
        host=host,
        db_label=db,
        key_source=key_source,
        retention=retention,
        alert_engine=alert_engine,
    )


def _log_to_stderr() -> logging.Handler | None:
    """Send this package's server log lines to stderr unless the embedding app set that up."""
    logger = logging.getLogger("peekapi_otel.server")
    if logger.handlers:
        return None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s peekapi-otel serve: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler


def run_ingest(
    server: IngestServer,
    store: EventStore,
    *,
    host: str,
    db_label: str,
    key_source: str,
    retention: int | None,
    alert_engine: Callable[[str], AlertEngine | None],
) -> int:
    """Serve until SIGTERM or SIGINT, then stop everything ``serve`` started and close
    ``store``; the same start and stop on every backend. ``alert_engine`` builds the
    engine (or ``None``) for the dashboard URL; it runs before the start line, so the
    engine's tables are ready while no ingest waits."""
    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() blocks until serve_forever returns, which runs on this same thread,
        # so it has to be called from another one.
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, name="peekapi-ingest-stop").start()

    # Signal handlers can only be installed from the main thread; an embedding caller on
    # another thread stops the server its own way.
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    handler = _log_to_stderr()
    bound_port = server.server_address[1]
    url_host = f"[{host}]" if ":" in host else host
    if server.api_key is None:
        print(
            "peekapi-otel serve: no API key set, so any x-api-key (or none) is accepted; "
            f"require one with --api-key-file FILE or {API_KEY_ENV}",
            file=sys.stderr,
            flush=True,
        )
    else:
        print(
            f"peekapi-otel serve: x-api-key required (from {key_source})",
            file=sys.stderr,
            flush=True,
        )
    keeper = None
    try:
        if retention is not None:
            from peekapi_otel.server._retention import Retention

            keeper = Retention(store, retention)
            keeper.start()
        server.alerts = alert_engine(f"http://{url_host}:{bound_port}")
        if server.alerts is not None:
            server.alerts.start()
        print(
            f"peekapi-otel ingest listening on http://{url_host}:{bound_port} (db {db_label})",
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
        if server.alerts is not None:
            server.alerts.stop()
        store.close()
        server.refusals.flush(force=True)
        if handler is not None:
            logging.getLogger("peekapi_otel.server").removeHandler(handler)
    print("peekapi-otel ingest stopped", file=sys.stderr, flush=True)
    return 0
