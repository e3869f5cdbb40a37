"""The audit log: one row in `omni.audit_log` for every operation omni-recovery performs.

How it works: `audit(conn, operation, subject, detail)` inserts a row (time from the database
clock, actor defaulting to the OS user running the command, detail as jsonb) on the caller's
connection and returns its id. It does not commit: the row belongs to the caller's transaction,
so an operation and its audit row are kept or lost together. To record a failure whose
transaction is rolled back, audit it after the rollback (or on another connection) and commit.

The table is append-only (UPDATE, DELETE and TRUNCATE are refused by triggers, see migration 0006).

What can go wrong: `detail` values that are not JSON (paths, datetimes, sets, bytes) are written as
their `str()`; an `audit` on a connection whose transaction already failed raises psycopg's
InFailedSqlTransaction; never put secrets (passphrases, keys, passwords) in `detail`.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Mapping
from functools import partial
from typing import Any

import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from omni_recovery.db.connection import SCHEMA

_dumps = partial(json.dumps, default=str, sort_keys=True)


def current_actor() -> str:
    """The OS user running this process (falls back to `uid:N` when it has no name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def audit(
    conn: psycopg.Connection[TupleRow],
    operation: str,
    subject: str | None = None,
    detail: Mapping[str, Any] | None = None,
    actor: str | None = None,
) -> int:
    """Insert an audit row in the caller's transaction and return its id (the caller commits)."""
    row = conn.execute(
        f"INSERT INTO {SCHEMA}.audit_log (actor, operation, subject, detail) VALUES (%s, %s, %s, %s) "
        "RETURNING id",
        (actor or current_actor(), operation, subject, Jsonb(dict(detail or {}), dumps=_dumps)),
    ).fetchone()
    assert row is not None
    return int(row[0])
