"""What the ingest needs from an event store, whichever database holds the events.

The SQLite :class:`~peekapi_otel.server._store.EventStore` and the PostgreSQL store both
answer it. The dashboard's query methods join this interface as each backend gains them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class StoreUnavailable(Exception):
    """The database cannot be reached now; the batch was not stored and may be sent again."""


class EventBackend(Protocol):
    def insert_rows(self, rows: Sequence[tuple[Any, ...]]) -> tuple[int, int]:
        """Store rows from ``validate_batch`` in one transaction, committed before this
        returns ``(accepted, duplicates)``; raises :class:`StoreUnavailable` when the
        database is out of reach, and ``ValueError`` for rows it can never store."""
        ...

    def count(self) -> int: ...

    def duplicates(self) -> int: ...

    def pairs(self) -> list[tuple[str, str]]: ...

    def close(self) -> None: ...
