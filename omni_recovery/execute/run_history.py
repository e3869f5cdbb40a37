"""The recovery runs read back from the recovery database: runs with their steps, each step's
attempts, and who started or resumed a run (what `status`, the report and the benches show).
Written by `tracking.py`; nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from omni_recovery.execute.run_lock import Connection


@dataclass(frozen=True)
class StepRecord:
    step_id: str
    phase: str
    component_id: str | None
    status: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    bytes_written: int
    detail: dict[str, Any]


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt of a step; `outcome` None: its process ended before the attempt did."""

    step_id: str
    attempt: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None
    error: str | None
    worker: str | None


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    plan_id: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    options: dict[str, Any]
    steps: list[StepRecord]
    operators: list[str] = field(default_factory=list)  # who started or resumed it (`run_operators`)


def step_attempts(conn: Connection, run_id: str) -> list[AttemptRecord]:
    """Every attempt of the run's steps, in the order they started."""
    rows = conn.execute(
        "SELECT step_id, attempt, started_at, finished_at, outcome, error, worker FROM omni.step_attempts "
        "WHERE run_id = %s ORDER BY started_at, step_id, attempt",
        (run_id,),
    ).fetchall()
    conn.commit()
    return [AttemptRecord(*row) for row in rows]


def recent_runs(conn: Connection, limit: int = 5) -> list[RunRecord]:
    """The latest runs with their steps, newest first (what `omni-recovery status` shows)."""
    runs = conn.execute(
        "SELECT run_id, plan_id, status, started_at, finished_at, options FROM omni.recovery_runs "
        "ORDER BY started_at DESC LIMIT %s",
        (limit,),
    ).fetchall()
    records = []
    for run_id, plan_id, status, started, finished, options in runs:
        steps = [
            StepRecord(*row)
            for row in conn.execute(
                "SELECT step_id, phase, component_id, status, attempts, started_at, finished_at, "
                "bytes_written, detail FROM omni.recovery_steps WHERE run_id = %s "
                "ORDER BY started_at NULLS LAST, step_id",
                (run_id,),
            ).fetchall()
        ]
        operators = run_operators(conn, run_id)
        records.append(RunRecord(run_id, plan_id, status, started, finished, options, steps, operators))
    conn.commit()
    return records


def run_operators(conn: Connection, run_id: str) -> list[str]:
    """Who started and who resumed the run, from its audit rows, in order: OS user and uid, host and
    database role, then the SSH keys the target hosts accepted during the run (fingerprint by host)."""
    people = conn.execute(
        "SELECT coalesce(os_user, actor), os_uid, host, db_role FROM omni.audit_log "
        "WHERE subject = %s AND operation IN ('recovery.start', 'recovery.resume') "
        "GROUP BY 1, 2, 3, 4 ORDER BY min(at)",
        (run_id,),
    ).fetchall()
    keys = conn.execute(
        "SELECT DISTINCT key.address, key.fingerprint FROM omni.audit_log, "
        "jsonb_each_text(ssh_keys) AS key(address, fingerprint) "
        "WHERE subject = %s OR detail->>'run_id' = %s ORDER BY 1, 2",
        (run_id, run_id),
    ).fetchall()
    lines = [_operator_line(*person) for person in people]
    if keys:
        lines.append(
            "SSH keys the targets accepted: "
            + ", ".join(f"{address} {fingerprint}" for address, fingerprint in keys)
        )
    return lines


def _operator_line(user: str, uid: int | None, host: str | None, role: str | None) -> str:
    uid_part = f" (uid {uid})" if uid is not None else ""
    host_part = f" on {host}" if host else ""
    role_part = f", database role {role}" if role else ""
    return f"run by {user}{uid_part}{host_part}{role_part}"
