"""Recovery tracking in the recovery database: runs, steps, verified files, and the audit trail.

How it works: a run belongs to a plan. `start_or_resume` returns the plan's unfinished run if
there is one (a killed `execute-plan` started again continues it) or opens a new one. Each step
is upserted when it starts (attempts + 1) and when it ends (status, bytes, detail). Every file a
restore has written *and verified* is recorded in `restored_files`; a resumed run loads that set
once and skips those files. Each write commits at once with its audit row, so a SIGKILL loses at
most the step or file in flight, which the resumed run redoes.

One process per run: `start_or_resume` first takes the plan's run lock (`run_lock.py`). Steps that
run at once each record on a connection of their own (`step_connections.py`), the rest on the lock's;
restore workers join that process's run, one step each at a time (`joined.py`).

What can go wrong: a connection lost mid-run (the server stopped or restarted) raises DatabaseError
saying so; what was committed stands, and the next execute-plan resumes the run (its lock went
with the connection).
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import socket
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from omni_recovery.db.audit import audit
from omni_recovery.errors import DatabaseError
from omni_recovery.execute.run_lock import Connection, release_run_lock, scalar, take_run_lock
from omni_recovery.execute.step_connections import StepConnections
from omni_recovery.operator_identity import ssh_keys_used

RUNNING, SUCCEEDED, FAILED, SKIPPED = "running", "succeeded", "failed", "skipped"
SshKeys = Callable[[], Mapping[str, str]]
P = ParamSpec("P")
R = TypeVar("R")


def _tracked(
    method: Callable[Concatenate[RecoveryTracker, Connection, P], R],
) -> Callable[Concatenate[RecoveryTracker, P], R]:
    """The call on the running step's own connection, or else on the run's (one call at a time), so
    that concurrent calls never share a transaction; a lost connection is a DatabaseError."""

    @functools.wraps(method)
    def call(tracker: RecoveryTracker, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with tracker.connection() as conn:
                return method(tracker, conn, *args, **kwargs)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:  # a pool's PoolTimeout too
            raise DatabaseError(
                f"the recovery database stopped answering ({str(exc).strip()}). What was verified "
                "before is recorded: once it answers again (execute-plan starts the embedded "
                "server), execute-plan of the same plan resumes the run"
            ) from exc

    return call


class RecoveryTracker:
    """Records one recovery run; every method commits its own small transaction, on the connection
    lent to the calling step (`step_connection`) or else on the run's (`conn`, one call at a time)."""

    def __init__(self, conn: Connection, run_id: str, ssh_keys: SshKeys = ssh_keys_used) -> None:
        self.conn, self.run_id = conn, run_id
        self.ssh_keys = ssh_keys  # the keys the hosts this run reached accepted, for its audit rows
        self.lock = threading.RLock()  # one call at a time on `conn`
        self._steps: StepConnections | None = None
        self._verified_lock = threading.Lock()
        # target → path → (sha256, size): read once, then kept up to date by files_verified (the run
        # lock keeps every other process from recording files for this run; a restore worker reads
        # them again for each op, whose steps' files no other process records meanwhile).
        self._verified: dict[str, dict[str, tuple[str | None, int]]] | None = None

    def use_step_pool(self, database_url: str, size: int) -> None:
        """Give each of up to `size` running steps a connection of its own (`step_connection`)."""
        self._steps = StepConnections(database_url, size)

    def step_connection(self) -> contextlib.AbstractContextManager[object]:
        """Within: this thread's calls go through a pooled connection held by it alone (a step)."""
        return self._steps.lent() if self._steps is not None else contextlib.nullcontext()

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """The connection for a call from this thread: its step's, or the run's, held meanwhile."""
        own = self._steps.current() if self._steps is not None else None
        with contextlib.nullcontext() if own is not None else self.lock:
            yield own or self.conn

    def close(self) -> None:
        """Close the steps' connections (the run's is its owner's to close)."""
        if self._steps is not None:
            self._steps.close()

    @classmethod
    def start_or_resume(
        cls, conn: Connection, plan_id: str, options: dict[str, Any], ssh_keys: SshKeys = ssh_keys_used
    ) -> RecoveryTracker:
        """The plan's open run (resumed) or a new one, its lock held by `conn` from before either;
        `ssh_keys` says which SSH keys the run's hosts accepted so far (for its audit rows)."""
        take_run_lock(conn, plan_id)
        row = conn.execute(
            "SELECT run_id FROM omni.recovery_runs WHERE plan_id = %s AND finished_at IS NULL "
            "ORDER BY started_at DESC LIMIT 1",
            (plan_id,),
        ).fetchone()
        if row is not None:
            run_id = str(row[0])
            conn.execute("UPDATE omni.recovery_runs SET status = %s WHERE run_id = %s", (RUNNING, run_id))
            detail = {"plan_id": plan_id, "options": options}
            audit(conn, "recovery.resume", run_id, detail, ssh_keys=ssh_keys())
        else:
            run_id = f"run-{datetime.now().strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
            conn.execute(
                "INSERT INTO omni.recovery_runs (run_id, plan_id, status, options) VALUES (%s, %s, %s, %s)",
                (run_id, plan_id, RUNNING, Jsonb(options)),
            )
            detail = {"plan_id": plan_id, "options": options}
            audit(conn, "recovery.start", run_id, detail, ssh_keys=ssh_keys())
        conn.commit()
        return cls(conn, run_id, ssh_keys)

    def release_run_lock(self, plan_id: str) -> None:
        """Let another process take the run (closing the connection does it too)."""
        release_run_lock(self.conn, plan_id)

    @_tracked
    def step_started(
        self, conn: Connection, step_id: str, phase: str, component_id: str | None, worker: str | None = None
    ) -> None:
        """A new attempt of the step: the step's row counts it, and it gets its own step_attempts row
        (`worker`: who runs it, this process as host:pid unless named)."""
        attempt = scalar(
            conn,
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
        conn.execute(
            "INSERT INTO omni.step_attempts (run_id, step_id, attempt, worker) VALUES (%s, %s, %s, %s)",
            (self.run_id, step_id, attempt, worker or this_process()),
        )
        # The database session that tracks the attempt: concurrent steps each have their own.
        session = {"run_id": self.run_id, "phase": phase, "db_backend_pid": conn.info.backend_pid}
        self._audit(conn, "step.start", step_id, session)
        conn.commit()

    @_tracked
    def step_finished(
        self,
        conn: Connection,
        step_id: str,
        status: str,
        bytes_written: int = 0,
        detail: dict[str, Any] | None = None,
    ) -> None:
        conn.execute(
            "UPDATE omni.recovery_steps SET status = %s, finished_at = now(), bytes_written = %s, "
            "detail = %s WHERE run_id = %s AND step_id = %s",
            (status, bytes_written, Jsonb(detail or {}), self.run_id, step_id),
        )
        conn.execute(
            "UPDATE omni.step_attempts a SET finished_at = now(), outcome = %s, error = %s "
            "FROM omni.recovery_steps s WHERE s.run_id = a.run_id AND s.step_id = a.step_id "
            "AND a.attempt = s.attempts AND a.run_id = %s AND a.step_id = %s",
            (status, (detail or {}).get("error"), self.run_id, step_id),
        )
        self._audit(
            conn,
            f"step.{status}",
            step_id,
            {"run_id": self.run_id, "bytes": bytes_written, **(detail or {})},
        )
        conn.commit()

    @_tracked
    def step_progress(self, conn: Connection, step_id: str, bytes_written: int) -> None:
        """A running step's bytes so far, what `status` shows while it runs (progress is not an
        operation: no audit row); step_finished records the final count."""
        conn.execute(
            "UPDATE omni.recovery_steps SET bytes_written = %s "
            "WHERE run_id = %s AND step_id = %s AND status = %s",
            (bytes_written, self.run_id, step_id, RUNNING),
        )
        conn.commit()

    @_tracked
    def step_skipped(
        self, conn: Connection, step_id: str, phase: str, component_id: str | None, detail: dict[str, Any]
    ) -> None:
        """Record a step that was not run (a dependency failed), without counting an attempt."""
        conn.execute(
            "INSERT INTO omni.recovery_steps "
            "(run_id, step_id, phase, component_id, status, attempts, started_at, finished_at, detail) "
            "VALUES (%s, %s, %s, %s, %s, 0, now(), now(), %s) ON CONFLICT (run_id, step_id) DO UPDATE SET "
            "status = EXCLUDED.status, started_at = now(), finished_at = now(), detail = EXCLUDED.detail",
            (self.run_id, step_id, phase, component_id, SKIPPED, Jsonb(detail)),
        )
        self._audit(conn, "step.skipped", step_id, {"run_id": self.run_id, **detail})
        conn.commit()

    @_tracked
    def unsuccessful_steps(self, conn: Connection) -> dict[str, tuple[str, dict[str, Any]]]:
        """step_id → (status, detail) of this run's steps that failed or were skipped."""
        rows = conn.execute(
            "SELECT step_id, status, detail FROM omni.recovery_steps "
            "WHERE run_id = %s AND status IN (%s, %s)",
            (self.run_id, FAILED, SKIPPED),
        ).fetchall()
        conn.commit()
        return {str(step_id): (str(status), dict(detail or {})) for step_id, status, detail in rows}

    @_tracked
    def succeeded_steps(self, conn: Connection) -> set[str]:
        rows = conn.execute(
            "SELECT step_id FROM omni.recovery_steps WHERE run_id = %s AND status = %s",
            (self.run_id, SUCCEEDED),
        ).fetchall()
        conn.commit()
        return {str(r[0]) for r in rows}

    @_tracked
    def verified_files(self, conn: Connection, target: str) -> dict[str, tuple[str | None, int]]:
        """path → (sha256, size) of every file this run already wrote and verified on `target`."""
        with self._verified_lock:
            if self._verified is None:
                rows = conn.execute(
                    "SELECT target, path, sha256, size FROM omni.restored_files WHERE run_id = %s",
                    (self.run_id,),
                ).fetchall()
                conn.commit()
                self._verified = defaultdict(dict)
                for root, path, sha, size in rows:
                    self._verified[str(root)][str(path)] = (sha, int(size))
            return dict(self._verified.get(target, {}))

    def forget_verified(self) -> None:
        """Read the verified files again on next use (a restore worker's context outlives an op)."""
        with self._verified_lock:
            self._verified = None

    @_tracked
    def files_verified(
        self, conn: Connection, target: str, files: Iterable[tuple[str, str | None, int]]
    ) -> None:
        """Record verified files (path, sha256, size); recording one twice is harmless."""
        rows = list(files)
        if not rows:
            return
        # COPY into a batch table of this session, then one INSERT that keeps the first record of a
        # path (a resumed run reports again a file it found whole): a round trip per batch, not per row.
        # One transaction around the batch even on an autocommit connection: its rows go at commit.
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS verified_batch "
                "(path text, sha256 text, size bigint) ON COMMIT DELETE ROWS"
            )
            with cur.copy("COPY verified_batch (path, sha256, size) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(
                "INSERT INTO omni.restored_files (run_id, target, path, sha256, size) "
                "SELECT %s, %s, path, sha256, size FROM verified_batch "
                "ON CONFLICT (run_id, target, path) DO NOTHING",
                (self.run_id, target),
            )
        conn.commit()
        with self._verified_lock:
            if self._verified is not None:
                known = self._verified[target]
                for path, sha, size in rows:
                    known.setdefault(path, (sha, size))  # the first record stands, as in the table

    @_tracked
    def interrupt(self, conn: Connection, error: str) -> None:
        """Mark the run failed but leave it open, so the next execute-plan resumes it."""
        conn.rollback()
        conn.execute("UPDATE omni.recovery_runs SET status = %s WHERE run_id = %s", (FAILED, self.run_id))
        self._audit(conn, "recovery.interrupted", self.run_id, {"error": error})
        conn.commit()

    @_tracked
    def finish(self, conn: Connection, status: str) -> None:
        conn.execute(
            "UPDATE omni.recovery_runs SET status = %s, finished_at = now() WHERE run_id = %s",
            (status, self.run_id),
        )
        self._audit(conn, f"recovery.{status}", self.run_id)
        conn.commit()

    def _audit(
        self, conn: Connection, operation: str, subject: str, detail: dict[str, Any] | None = None
    ) -> None:
        audit(conn, operation, subject, detail, ssh_keys=self.ssh_keys())


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
