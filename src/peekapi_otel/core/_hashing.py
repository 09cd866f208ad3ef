"""The default consumer ID: a short, stable hash of a credential header's value."""

from __future__ import annotations

import functools
import hashlib


# Few distinct consumers send most requests: remember their hashes (the raw values are
# in this process's memory anyway, and never leave it).
@functools.lru_cache(maxsize=4096)
def hash_consumer(value: str) -> str:
    """``hash_`` + 12 hex chars of SHA-256 of the full value."""
    return "hash_" + hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:12]
