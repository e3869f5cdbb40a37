"""PostgreSQL advisory lock keys: a lock is named by a text, its key the text's SHA-256 cut to the
64-bit signed integer `pg_advisory_lock` takes, so that every process derives the same key."""

from __future__ import annotations

import hashlib


def advisory_key(name: str) -> int:
    """The advisory lock key of `name`."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
