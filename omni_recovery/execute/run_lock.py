"""The run lock: one process per recovery run of a plan.

`take_run_lock` takes the plan's PostgreSQL advisory lock on the tracker's connection, before it
reads or changes any run, and holds it as long as that connection lives (a killed process's
connection, and so its lock, ends with it). A second process on the same plan is refused
(RunBusy) naming the run, the holder's process id and host (its connection's application_name)
and since when; `run_holder` tells `status` which process holds a run, `run_is_held` whether one
does.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from omni_recovery.db.advisory import advisory_key
from omni_recovery.errors import RecoveryError

Connection = psycopg.Connection[TupleRow]

# The lock holder's identity, in its connection's application_name (PostgreSQL keeps 63 bytes).
HOLDER_NAME = re.compile(r"omni-recovery run (\d+)@(.*)")
# How long a refused process waits for the holder's run row (the holder commits it just after locking).
RUN_ROW_WAIT_SECONDS = 5.0


class RunBusy(RecoveryError):
    """Another process holds the run of this plan."""


def _lock_key(plan_id: str) -> int:
    return advisory_key(f"omni-recovery run of plan {plan_id}")


# The granted locks of a key (pg_locks shows a bigint key as two oids, the high and low halves).
_HOLDERS = (
    "FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND classid = %s::bigint::oid AND objid = %s::bigint::oid"
)


def _lock_oids(plan_id: str) -> tuple[int, int]:
    unsigned = _lock_key(plan_id) & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


def scalar(conn: Connection, query: str, *args: object) -> Any:
    """The first column of the query's first row (None when it returns no row)."""
    row = conn.execute(query, args).fetchone()
    return row[0] if row else None


def take_run_lock(conn: Connection, plan_id: str) -> None:
    """Hold the lock of `plan_id`'s run for as long as `conn` lives; raise RunBusy when another
    connection holds it. Changes nothing in the database."""
    holder = f"omni-recovery run {os.getpid()}@{socket.gethostname()}"
    conn.execute("SELECT set_config('application_name', %s, false)", (holder,))
    got = scalar(conn, "SELECT pg_try_advisory_lock(%s)", _lock_key(plan_id))
    conn.commit()
    if not got:
        raise RunBusy(_busy_message(conn, plan_id))


def release_run_lock(conn: Connection, plan_id: str) -> None:
    """Let another process take the run (closing the connection does it too)."""
    key = _lock_key(plan_id)
    while scalar(conn, "SELECT pg_advisory_unlock(%s)", key):
        pass  # taken once per take_run_lock on this connection
    conn.commit()


@dataclass(frozen=True)
class RunHolder:
    """The process holding a run's lock, as its connection tells (pid and host unknown for a
    connection that is not omni-recovery's)."""

    pid: int | None
    host: str | None
    since: datetime

    def __str__(self) -> str:
        who = f"process {self.pid} on host {self.host}" if self.pid else "another process"
        return f"{who} since {self.since:%Y-%m-%d %H:%M:%S %Z}"


def run_holder(conn: Connection, plan_id: str) -> RunHolder | None:
    """Who holds the run of `plan_id` now, or None (reads pg_stat_activity: disturbs no run)."""
    row = conn.execute(
        f"SELECT application_name, backend_start FROM pg_stat_activity WHERE pid IN (SELECT pid {_HOLDERS})",
        _lock_oids(plan_id),
    ).fetchone()
    conn.commit()
    if row is None:
        return None
    match = HOLDER_NAME.fullmatch(row[0] or "")
    return RunHolder(int(match[1]), match[2], row[1]) if match else RunHolder(None, None, row[1])


def _busy_message(conn: Connection, plan_id: str) -> str:
    run_id = _open_run(conn, plan_id)
    holder = run_holder(conn, plan_id)
    run = f"run {run_id}" if run_id else f"the run of plan {plan_id}"
    return (
        f"{run} is being executed by {holder or 'another process'}: nothing was done. Wait for it to "
        "end (`omni-recovery status` shows it), or stop that process, then run the command again"
    )


def _open_run(conn: Connection, plan_id: str) -> str | None:
    """The plan's open run. The lock's holder records it just after locking: a process refused in
    between waits for it (a little while: a holder that died in between never records it)."""
    deadline = time.monotonic() + RUN_ROW_WAIT_SECONDS
    while True:
        run_id = scalar(
            conn,
            "SELECT run_id FROM omni.recovery_runs WHERE plan_id = %s AND finished_at IS NULL "
            "ORDER BY started_at DESC LIMIT 1",
            plan_id,
        )
        conn.commit()
        if run_id is not None or time.monotonic() > deadline or not run_is_held(conn, plan_id):
            return None if run_id is None else str(run_id)
        time.sleep(0.05)


def run_is_held(conn: Connection, plan_id: str) -> bool:
    """Whether a process holds the run of `plan_id` now (reads pg_locks: takes no lock, disturbs no
    run). A run recorded as running that nobody holds was stopped without saying so (killed, or its
    database went away)."""
    held = scalar(conn, f"SELECT count(*) {_HOLDERS}", *_lock_oids(plan_id))
    conn.commit()
    return bool(held)
