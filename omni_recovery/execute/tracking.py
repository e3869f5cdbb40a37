"""Recovery tracking in the recovery database: runs, steps, verified files, and the audit trail.

How it works: a run belongs to a plan. `start_or_resume` returns the plan's unfinished run if
there is one (a killed `execute-plan` started again continues it) or opens a new one. Each step
is upserted when it starts (attempts + 1) and when it ends (status, bytes, detail). Every file a
restore has written *and verified* is recorded in `restored_files`; a resumed run loads that set
once and skips those files. Each write commits at once with its audit row, so a SIGKILL loses at
most the step or file in flight, which the resumed run redoes.

One process per run: `start_or_resume` first takes the plan's run lock (`run_lock.py`); restore
workers join that process's run, one step each at a time (`joined.py`).

What can go wrong: a connection lost mid-run (the server stopped or restarted) raises DatabaseError
saying so; what was committed stands, and the next execute-plan resumes the run (its lock went
with the connection).
"""

from __future__ import annotations

import functools
import os
import secrets
import socket
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from omni_recovery.db.audit import audit
from omni_recovery.errors import DatabaseError
from omni_recovery.execute.run_lock import Connection, release_run_lock, scalar, take_run_lock

RUNNING, SUCCEEDED, FAILED, SKIPPED = "running", "succeeded", "failed", "skipped"
P = ParamSpec("P")
R = TypeVar("R")


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


def _serialized(method: Callable[P, R]) -> Callable[P, R]:
    """One call at a time on the tracker's connection, so concurrent steps never share a transaction."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        tracker = args[0]
        assert isinstance(tracker, RecoveryTracker)
        with tracker.lock:
            try:
                return method(*args, **kwargs)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                raise DatabaseError(
                    f"the recovery database stopped answering ({str(exc).strip()}). What was verified "
                    "before is recorded: once it answers again (execute-plan starts the embedded "
                    "server), execute-plan of the same plan resumes the run"
                ) from exc

    return call


class RecoveryTracker:
    """Records one recovery run; every method commits its own small transaction, one call at a time."""

    def __init__(self, conn: Connection, run_id: str) -> None:
        self.conn, self.run_id = conn, run_id
        self.lock = threading.RLock()
        # target → path → (sha256, size): read once, then kept up to date by files_verified (the run
        # lock keeps every other process from recording files for this run; a restore worker reads
        # them again for each op, whose steps' files no other process records meanwhile).
        self._verified: dict[str, dict[str, tuple[str | None, int]]] | None = None

    @classmethod
    def start_or_resume(cls, conn: Connection, plan_id: str, options: dict[str, Any]) -> RecoveryTracker:
        """The plan's open run (resumed) or a new one, its lock held by `conn` from before either."""
        take_run_lock(conn, plan_id)
        row = conn.execute(
            "SELECT run_id FROM omni.recovery_runs WHERE plan_id = %s AND finished_at IS NULL "
            "ORDER BY started_at DESC LIMIT 1",
            (plan_id,),
        ).fetchone()
        if row is not None:
            run_id = str(row[0])
            conn.execute("UPDATE omni.recovery_runs SET status = %s WHERE run_id = %s", (RUNNING, run_id))
            audit(conn, "recovery.resume", run_id, {"plan_id": plan_id, "options": options})
        else:
            run_id = f"run-{datetime.now().strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
            conn.execute(
                "INSERT INTO omni.recovery_runs (run_id, plan_id, status, options) VALUES (%s, %s, %s, %s)",
                (run_id, plan_id, RUNNING, Jsonb(options)),
            )
            audit(conn, "recovery.start", run_id, {"plan_id": plan_id, "options": options})
        conn.commit()
        return cls(conn, run_id)

    def release_run_lock(self, plan_id: str) -> None:
        """Let another process take the run (closing the connection does it too)."""
        release_run_lock(self.conn, plan_id)

    @_serialized
    def step_started(
        self, step_id: str, phase: str, component_id: str | None, worker: str | None = None
    ) -> None:
        """A new attempt of the step: the step's row counts it, and it gets its own step_attempts row
        (`worker`: who runs it, this process as host:pid unless named)."""
        attempt = scalar(
            self.conn,
            "INSERT INTO omni.recovery_steps "
            "(run_id, step_id, phase, component_id, status, attempts, started_at) "
            "VALUES (%s, %s, %s, %s, %s, 1, now()) ON CONFLICT (run_id, step_id) DO UPDATE SET "
            "status = EXCLUDED.status, attempts = omni.recovery_steps.attempts + 1, started_at = now(), "
            "finished_at = NULL RETURNING attempts",
            self.run_id,
            step_id,
            phase,
            component_id,
            RUNNING,
        )
        self.conn.execute(
            "INSERT INTO omni.step_attempts (run_id, step_id, attempt, worker) VALUES (%s, %s, %s, %s)",
            (self.run_id, step_id, attempt, worker or this_process()),
        )
        audit(self.conn, "step.start", step_id, {"run_id": self.run_id, "phase": phase})
        self.conn.commit()

    @_serialized
    def step_finished(
        self, step_id: str, status: str, bytes_written: int = 0, detail: dict[str, Any] | None = None
    ) -> None:
        self.conn.execute(
            "UPDATE omni.recovery_steps SET status = %s, finished_at = now(), bytes_written = %s, "
            "detail = %s WHERE run_id = %s AND step_id = %s",
            (status, bytes_written, Jsonb(detail or {}), self.run_id, step_id),
        )
        self.conn.execute(
            "UPDATE omni.step_attempts a SET finished_at = now(), outcome = %s, error = %s "
            "FROM omni.recovery_steps s WHERE s.run_id = a.run_id AND s.step_id = a.step_id "
            "AND a.attempt = s.attempts AND a.run_id = %s AND a.step_id = %s",
            (status, (detail or {}).get("error"), self.run_id, step_id),
        )
        audit(
            self.conn,
            f"step.{status}",
            step_id,
            {"run_id": self.run_id, "bytes": bytes_written, **(detail or {})},
        )
        self.conn.commit()

    @_serialized
    def step_progress(self, step_id: str, bytes_written: int) -> None:
        """A running step's bytes so far, what `status` shows while it runs (progress is not an
        operation: no audit row); step_finished records the final count."""
        self.conn.execute(
            "UPDATE omni.recovery_steps SET bytes_written = %s "
            "WHERE run_id = %s AND step_id = %s AND status = %s",
            (bytes_written, self.run_id, step_id, RUNNING),
        )
        self.conn.commit()

    @_serialized
    def step_skipped(
        self, step_id: str, phase: str, component_id: str | None, detail: dict[str, Any]
    ) -> None:
        """Record a step that was not run (a dependency failed), without counting an attempt."""
        self.conn.execute(
            "INSERT INTO omni.recovery_steps "
            "(run_id, step_id, phase, component_id, status, attempts, started_at, finished_at, detail) "
            "VALUES (%s, %s, %s, %s, %s, 0, now(), now(), %s) ON CONFLICT (run_id, step_id) DO UPDATE SET "
            "status = EXCLUDED.status, started_at = now(), finished_at = now(), detail = EXCLUDED.detail",
            (self.run_id, step_id, phase, component_id, SKIPPED, Jsonb(detail)),
        )
        audit(self.conn, "step.skipped", step_id, {"run_id": self.run_id, **detail})
        self.conn.commit()

    @_serialized
    def unsuccessful_steps(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """step_id → (status, detail) of this run's steps that failed or were skipped."""
        rows = self.conn.execute(
            "SELECT step_id, status, detail FROM omni.recovery_steps "
            "WHERE run_id = %s AND status IN (%s, %s)",
            (self.run_id, FAILED, SKIPPED),
        ).fetchall()
        self.conn.commit()
        return {str(step_id): (str(status), dict(detail or {})) for step_id, status, detail in rows}

    @_serialized
    def succeeded_steps(self) -> set[str]:
        rows = self.conn.execute(
            "SELECT step_id FROM omni.recovery_steps WHERE run_id = %s AND status = %s",
            (self.run_id, SUCCEEDED),
        ).fetchall()
        self.conn.commit()
        return {str(r[0]) for r in rows}

    @_serialized
    def verified_files(self, target: str) -> dict[str, tuple[str | None, int]]:
        """path → (sha256, size) of every file this run already wrote and verified on `target`."""
        if self._verified is None:
            rows = self.conn.execute(
                "SELECT target, path, sha256, size FROM omni.restored_files WHERE run_id = %s",
                (self.run_id,),
            ).fetchall()
            self.conn.commit()
            self._verified = defaultdict(dict)
            for root, path, sha, size in rows:
                self._verified[str(root)][str(path)] = (sha, int(size))
        return dict(self._verified.get(target, {}))

    @_serialized
    def forget_verified(self) -> None:
        """Read the verified files again on next use (a restore worker's context outlives an op)."""
        self._verified = None

    @_serialized
    def files_verified(self, target: str, files: Iterable[tuple[str, str | None, int]]) -> None:
        """Record verified files (path, sha256, size); recording one twice is harmless."""
        rows = [(self.run_id, target, path, sha, size) for path, sha, size in files]
        if not rows:
            return
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO omni.restored_files (run_id, target, path, sha256, size) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (run_id, target, path) DO NOTHING",
                rows,
            )
        self.conn.commit()
        if self._verified is not None:
            known = self._verified[target]
            for _, _, path, sha, size in rows:
                known.setdefault(path, (sha, size))  # the first record stands, as in the table

    @_serialized
    def interrupt(self, error: str) -> None:
        """Mark the run failed but leave it open, so the next execute-plan resumes it."""
        self.conn.rollback()
        self.conn.execute(
            "UPDATE omni.recovery_runs SET status = %s WHERE run_id = %s", (FAILED, self.run_id)
        )
        audit(self.conn, "recovery.interrupted", self.run_id, {"error": error})
        self.conn.commit()

    @_serialized
    def finish(self, status: str) -> None:
        self.conn.execute(
            "UPDATE omni.recovery_runs SET status = %s, finished_at = now() WHERE run_id = %s",
            (status, self.run_id),
        )
        audit(self.conn, f"recovery.{status}", self.run_id)
        self.conn.commit()


def restored_steps(conn: Connection, plan_id: str) -> set[str]:
    """The steps that succeeded, each file verified as written, in a run of the plan that closed as
    succeeded (what a later partial restore of the plan need not do again)."""
    rows = conn.execute(
        "SELECT DISTINCT s.step_id FROM omni.recovery_steps s JOIN omni.recovery_runs r USING (run_id) "
        "WHERE r.plan_id = %s AND r.status = %s AND r.finished_at IS NOT NULL AND s.status = %s",
        (plan_id, SUCCEEDED, SUCCEEDED),
    ).fetchall()
    conn.commit()
    return {str(row[0]) for row in rows}


def this_process() -> str:
    """This process as `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


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
