"""A restore worker's share of a recovery run: it joins the run the control node opened.

The control node passes the gate once (gate.prepare: deep validation on record, the plan, the
run's lock) and holds the run's lock for as long as the run lasts; a worker must neither open a
run of its own nor be refused because the control node holds it. `JoinedRunContext` therefore
takes no run lock: it reads the plan, the set and the layout as `RunContext` does, checks its own
passphrase (each worker has its own copy), and records its steps in the run named by the control
node, each attempt under the worker's name, with the certificates the control node issued for the
run. Two workers never run one step: a worker holds the step's advisory lock (per run and step)
while it runs it, and a step found succeeded once the lock is held (a task delivered twice) is not
run again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from omni_recovery.db.advisory import advisory_key
from omni_recovery.db.connection import connect
from omni_recovery.errors import RecoveryError
from omni_recovery.execute.context import RunContext
from omni_recovery.execute.options import ExecuteOptions, RecoveryRefused
from omni_recovery.execute.run_lock import Connection, scalar
from omni_recovery.execute.tracking import SUCCEEDED, RecoveryTracker
from omni_recovery.settings import Settings
from transforms.plan import Step


def _step_key(run_id: str, step_id: str) -> int:
    return advisory_key(f"omni-recovery step {step_id} of run {run_id}")


class JoinedRunContext(RunContext):
    """The context of the run `run_id`, opened by another process; see the module documentation."""

    def __init__(
        self,
        settings: Settings,
        options: ExecuteOptions,
        passphrase: bytes,
        database_url: str,
        write_report: Callable[[RunContext], Path],
        run_id: str,
        run_folder: Path,
        worker: str,
    ) -> None:
        super().__init__(settings, options, passphrase, database_url, write_report)
        self.run_id, self.worker = run_id, worker
        self._run_folder = run_folder

    @property
    def run_folder(self) -> Path:
        """The control node's folder of the run (on storage the workers share): the run's
        certificates, issued there once, so that every node trusts the same CA."""
        return self._run_folder

    @cached_property
    def run_lock(self) -> Connection:
        """The tracker's connection, holding no lock: the control node holds the run's."""
        return connect(self.database_url)

    @cached_property
    def tracker(self) -> RecoveryTracker:
        conn = self.run_lock
        plan_of_run = scalar(
            conn,
            "SELECT plan_id FROM omni.recovery_runs WHERE run_id = %s AND finished_at IS NULL",
            self.run_id,
        )
        conn.commit()
        if plan_of_run != self.plan_id:
            raise RecoveryRefused(
                f"run {self.run_id} is not an open run of plan {self.options.plan_path} "
                f"({self.plan_id}): a worker only joins the run its control node holds"
            )
        tracker = RecoveryTracker(conn, self.run_id, self.ssh_keys)
        tracker.use_step_pool(self.database_url, self.options.parallel)
        return tracker

    @contextmanager
    def claimed(self, step: Step) -> Iterator[bool]:
        """Hold the step's lock while it runs; False when it succeeded meanwhile (not to run again)."""
        with connect(self.database_url) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_step_key(self.run_id, step.id),))
            status = scalar(
                conn,
                "SELECT status FROM omni.recovery_steps WHERE run_id = %s AND step_id = %s",
                self.run_id,
                step.id,
            )
            conn.commit()
            yield status != SUCCEEDED


def join(context: JoinedRunContext) -> None:
    """What a worker checks before its steps run: the plan against the set and inventory, its
    passphrase (the data key), the layout, and the run it joins."""
    _ = context.plan
    _ = context.source
    _ = context.data_key
    _ = context.files_by_step
    _ = context.tracker


def steps_named(context: RunContext, step_ids: tuple[str, ...]) -> list[Step]:
    """The plan's steps of these ids that the run restores (all of them: a worker runs whole runs)."""
    selected = {s.id: s for s in context.selected_steps()}
    missing = [s for s in step_ids if s not in {step.id for step in context.plan.steps}]
    if missing:
        raise RecoveryError(f"{context.options.plan_path}: the plan has no step {missing[0]}")
    return [selected[s] for s in step_ids if s in selected]
