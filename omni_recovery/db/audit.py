"""The audit log: one row in `omni.audit_log` for every operation omni-recovery performs.

How it works: `audit(conn, operation, subject, detail)` inserts a row (time from the database
clock, actor defaulting to the OS user running the command, detail as jsonb) on the caller's
connection and returns its id. Each row names who did it (migration 0013): the OS user, uid and host
of the process, the database role (the server's current_user) and the SSH key each host accepted
(`ssh_keys`: a recovery run gives those of the hosts it reached; else every one this process has used
so far, `operator_identity.ssh_keys_used`). It does not commit: the row belongs to
the caller's transaction, so an operation and its audit row are kept or lost together. To record a
failure whose transaction is rolled back, audit it after the rollback (or on another connection)
and commit.

The table is append-only (UPDATE, DELETE and TRUNCATE are refused by triggers, see migration 0006).

What can go wrong: `detail` values that are not JSON (paths, datetimes, sets, bytes) are written as
their `str()`; an `audit` on a connection whose transaction already failed raises psycopg's
InFailedSqlTransaction; never put secrets (passphrases, keys, passwords) in `detail`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import partial
from typing import Any

import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from omni_recovery.db.connection import SCHEMA
from omni_recovery.operator_identity import Operator, ssh_keys_used

_dumps = partial(json.dumps, default=str, sort_keys=True)


def audit(
    conn: psycopg.Connection[TupleRow],
    operation: str,
    subject: str | None = None,
    detail: Mapping[str, Any] | None = None,
    actor: str | None = None,
    ssh_keys: Mapping[str, str] | None = None,
) -> int:
    """Insert an audit row in the caller's transaction and return its id (the caller commits)."""
    who = Operator.current()
    row = conn.execute(
        f"INSERT INTO {SCHEMA}.audit_log (actor, operation, subject, detail, os_user, os_uid, host, "
        "ssh_keys) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            actor or who.os_user,
            operation,
            subject,
            Jsonb(dict(detail or {}), dumps=_dumps),
            who.os_user,
            who.uid,
            who.host,
            Jsonb(dict(ssh_keys_used() if ssh_keys is None else ssh_keys)),
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])
