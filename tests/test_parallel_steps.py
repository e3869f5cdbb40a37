"""Steps in parallel, checked in the recovery database: overlap, dependency order, same result.

A real recovery of the demo set through Dagster, once with --parallel-factor 3, once one step at a
time. Whether two steps overlap depends on how fast each is, so the parallel run's progress
callback holds a step's first restored file until the recovery database shows several steps of
its phase running at once (or a deadline passes, and then the overlap check fails): with the
scheduler running one step at a time they never would.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from omni_recovery.db.connection import connect
from omni_recovery.db.schema import init_database
from omni_recovery.execute.options import ExecuteOptions
from omni_recovery.execute.run_history import StepRecord, recent_runs
from omni_recovery.execute.tracking import RUNNING, SUCCEEDED, Connection
from omni_recovery.settings import load_settings
from pipelines.recovery_runner import deploy_directors, execute_recovery
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.conftest import PostgresForTests
from tests.test_recovery import REGENERATED, make_setup, restored_tree, validated, workspace  # noqa: F401


@pytest.fixture(scope="module")
def database_url(postgres_server: PostgresForTests) -> Iterator[str]:
    """This module's own recovery database: its runs store plans of the shared demo set, which
    other modules count in the session's database."""
    url = postgres_server.create_database("omni_parallel")
    init_database(url)
    yield url
    postgres_server.drop_database(url)


class HeldUntilTogether:
    """A progress callback that holds restored files until `count` steps of `phase` run at once, for at
    most `seconds` from the first file restored (not from its making: the run's preparation before
    that takes long on a loaded machine, and would use the time up)."""

    def __init__(self, database_url: str, phase: str, count: int, seconds: float = 120) -> None:
        self.database_url, self.phase, self.count, self.seconds = database_url, phase, count, seconds
        self.deadline: float | None = None
        self.met = threading.Event()
        with connect(database_url) as conn:
            self.since = scalar(conn, "SELECT now()")  # not steps left running by others

    def __call__(self, phase: str, amount: int) -> None:
        if phase != "restore":
            return
        if self.deadline is None:  # the steps' threads may both set it: at about the same time
            self.deadline = time.monotonic() + self.seconds
        with connect(self.database_url) as conn:
            while not self.met.is_set() and time.monotonic() < self.deadline:
                if self._running(conn) >= self.count:
                    self.met.set()
                else:
                    time.sleep(0.02)

    def _running(self, conn: Connection) -> int:
        return int(
            scalar(
                conn,
                "SELECT count(*) FROM omni.recovery_steps s JOIN omni.recovery_runs r USING (run_id) "
                "WHERE r.finished_at IS NULL AND s.phase = %s AND s.status = %s AND s.started_at > %s",
                self.phase,
                RUNNING,
                self.since,
            )
        )


def scalar(conn: Connection, query: str, *args: object) -> Any:
    row = conn.execute(query, args).fetchone()
    conn.commit()
    assert row is not None
    return row[0]


def run_steps(database_url: str, run_id: str) -> dict[str, StepRecord]:
    with connect(database_url) as conn:
        run = next(r for r in recent_runs(conn, limit=50) if r.run_id == run_id)
    return {s.step_id: s for s in run.steps}


def interval(step: StepRecord) -> tuple[datetime, datetime]:
    assert step.started_at is not None and step.finished_at is not None, step.step_id
    return step.started_at, step.finished_at


def most_at_once(steps: list[StepRecord]) -> int:
    """The most of `steps` whose recorded [start, finish] intervals overlap at one instant."""
    events = sorted((t, kind) for s in steps for t, kind in zip(interval(s), (1, -1), strict=True))
    running = most = 0
    for _, change in events:  # at equal times a finish (-1) sorts before a start (+1)
        running += change
        most = max(most, running)
    return most


def tracking_sessions(database_url: str, run_id: str) -> dict[str, int]:
    """step id → the database backend that recorded its (last) start, from the audit log."""
    with connect(database_url) as conn:
        rows = conn.execute(
            "SELECT subject, (detail->>'db_backend_pid')::int FROM omni.audit_log "
            "WHERE operation = 'step.start' AND detail->>'run_id' = %s ORDER BY id",
            (run_id,),
        ).fetchall()
    return {str(step_id): int(pid) for step_id, pid in rows}


def overlapping_pairs(steps: list[StepRecord]) -> list[tuple[str, str]]:
    return [
        (a.step_id, b.step_id)
        for i, a in enumerate(steps)
        for b in steps[i + 1 :]
        if interval(a)[0] < interval(b)[1] and interval(b)[0] < interval(a)[1]
    ]


def assert_dependencies_ended_first(
    setup_steps: dict[str, tuple[str, ...]], ran: dict[str, StepRecord]
) -> None:
    for step_id, depends_on in setup_steps.items():
        for dependency in depends_on:
            if step_id in ran and dependency in ran:
                assert interval(ran[dependency])[1] <= interval(ran[step_id])[0], (dependency, step_id)


def comparable(tree: dict[str, str]) -> dict[str, str]:
    """A restored tree without what each run issues anew (the CA and the node certificates)."""
    return {path: digest for path, digest in tree.items() if not path.startswith(REGENERATED)}


def test_independent_steps_run_at_once_in_dependency_order_and_restore_what_a_serial_run_does(
    validated: DemoSet,  # noqa: F811
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    database_url: str,
) -> None:
    setup = make_setup(validated, tmp_path / "recovery")
    held = HeldUntilTogether(database_url, "volumes", 3)
    options = ExecuteOptions(setup.plan_path, parallel_factor=3)
    summary = execute_recovery(load_settings(workspace), options, PASSPHRASE, progress=held)
    ran = run_steps(database_url, summary.run_id)
    volumes = [s for s in ran.values() if s.phase == "volumes"]
    assert len(volumes) > 3 and all(s.status == SUCCEEDED for s in volumes)
    assert most_at_once(volumes) == 3, "three volume steps overlap in the recorded timestamps, never more"
    assert most_at_once(list(ran.values())) <= 3
    assert_dependencies_ended_first({s.id: s.depends_on for s in setup.plan.steps}, ran)
    sessions = tracking_sessions(database_url, summary.run_id)
    together = overlapping_pairs(list(ran.values()))
    assert together and all(sessions[a] != sessions[b] for a, b in together), (
        "steps that ran at once each recorded on a database connection of its own"
    )
    assert len(set(sessions.values())) <= 3, "no more connections than the parallel factor"
    in_parallel = comparable(restored_tree(setup.plan, tmp_path / "parallel-tree"))

    shutil.rmtree(setup.folder / "infra")  # the same plan again (a new run), one step at a time
    serial = ExecuteOptions(setup.plan_path, parallel_factor=3, mode="resource-efficient")
    # Held as well (for a few seconds): a second step started meanwhile would overlap the first.
    held_alone = HeldUntilTogether(database_url, "volumes", 2, seconds=5)
    serial_summary = execute_recovery(load_settings(workspace), serial, PASSPHRASE, progress=held_alone)
    assert serial_summary.run_id != summary.run_id
    assert most_at_once(list(run_steps(database_url, serial_summary.run_id).values())) == 1, (
        "resource-efficient: one step at a time whatever the parallel factor"
    )
    one_at_a_time = comparable(restored_tree(setup.plan, tmp_path / "serial-tree"))
    assert len(in_parallel) > 100 and in_parallel == one_at_a_time


@pytest.mark.parametrize("parallel", [1, 3])
def test_deploy_directors_deploys_as_many_directors_at_once_as_parallel_says(
    validated: DemoSet,  # noqa: F811
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    database_url: str,
    parallel: int,
) -> None:
    setup = make_setup(validated, tmp_path)
    directors = [s.id for s in setup.plan.steps if s.phase == "directors"]
    assert len(directors) == 3, "the demo set has three Directors"
    held = HeldUntilTogether(database_url, "directors", parallel, seconds=120 if parallel > 1 else 0)
    options = ExecuteOptions(setup.plan_path, parallel_factor=parallel)
    summary = deploy_directors(load_settings(workspace), options, PASSPHRASE, progress=held)
    ran = run_steps(database_url, summary.run_id)
    assert {s for s in ran if ran[s].status == SUCCEEDED} >= set(directors)
    assert most_at_once([ran[d] for d in directors]) == parallel
    assert_dependencies_ended_first({s.id: s.depends_on for s in setup.plan.steps}, ran)
