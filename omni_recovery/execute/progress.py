"""A recovery run's progress as the recovery database records it: what `status` and the live display show.

How it works: the planned totals come from the run's plan (stored with the run) and the catalog of its
backup set: the files and bytes of each step's component (`omni.files`, a chunked file counted once at
its whole size, a sealed file at its plaintext size; a Director step also restores a copy of each
component no step restores, the shared documents), over the steps the command executes (all; for a
partial restore, those its run recorded when it selected them with its own needs, RunContext.partial;
for deploy-directors, those of its phases), but for gate steps, which mark phase boundaries and do no
work. Done is counted in the same terms: a step that succeeded put all of its component in place
(rewritten documents included), so it counts its planned files and bytes; a running step counts the
bytes it has restored so far (`bytes_written`, updated every few seconds), and the files verified so
far (`restored_files`) show when they are more. A finished run thus shows done == total.
`read_progress` reads one snapshot; nothing here writes, so any process may watch a run another one
executes.

What can go wrong: a set not registered in the catalog has no file counts, so the totals are
unknown (None) and the display shows the run's raw counters (bytes written, files verified).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from omni_recovery.execute.selection import step_of_component
from omni_recovery.execute.tracking import RUNNING, SUCCEEDED, Connection
from transforms.plan import Step, plan_from_yaml


@dataclass(frozen=True)
class PlannedTotals:
    steps: int
    files: int | None  # None: the set is not in the catalog
    bytes: int | None
    work: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # step id → its files and bytes


@dataclass(frozen=True)
class RunProgress:
    """One reading of a run's counters."""

    run_id: str
    status: str
    finished: bool
    phase: str  # the phase of the step started last
    running: tuple[str, ...]  # the steps running now
    steps_done: int
    files_done: int
    bytes_done: int
    totals: PlannedTotals
    at: datetime


# Per component: its files (a chunked file once) and their restored size.
_CATALOG_TOTALS = """
SELECT component_id,
       count(*) FILTER (WHERE chunk_of IS NULL OR chunk_index = 0),
       coalesce(sum(CASE WHEN chunk_of IS NULL
                         THEN coalesce((encryption->>'plaintext_size')::bigint, logical_size, size)
                         WHEN chunk_index = 0 THEN logical_size ELSE 0 END), 0)
FROM omni.files WHERE backup_set_id = %s AND type = 'file' AND path LIKE 'data/%%'
GROUP BY component_id
"""


def planned_totals(conn: Connection, run_id: str, phases: Collection[str] | None = None) -> PlannedTotals:
    """The steps, files and bytes the run `run_id` executes, from its plan and its set's catalog;
    only the steps of `phases` when given (a command that runs only those)."""
    row = conn.execute(
        "SELECT p.plan_yaml, p.backup_set_id, r.options FROM omni.recovery_runs r "
        "JOIN omni.recovery_plans p USING (plan_id) WHERE r.run_id = %s",
        (run_id,),
    ).fetchone()
    if row is None:
        return PlannedTotals(0, None, None)
    plan = plan_from_yaml(str(row[0]))
    recorded = (row[2] or {}).get("steps")  # a partial restore's steps, as its run selected them
    chosen = None if recorded is None else set(recorded)
    steps = [
        s
        for s in plan.steps
        if (chosen is None or s.id in chosen) and not s.is_gate and (phases is None or s.phase in phases)
    ]
    by_component = {
        str(c): (int(n), int(b)) for c, n, b in conn.execute(_CATALOG_TOTALS, (row[1],)).fetchall()
    }
    conn.commit()
    work = {s.id: _work_of(s, by_component) for s in steps}
    if not by_component:
        return PlannedTotals(len(steps), None, None, work)
    counted = work.values()
    return PlannedTotals(len(steps), sum(n for n, _ in counted), sum(b for _, b in counted), work)


def _work_of(step: Step, by_component: Mapping[str, tuple[int, int]]) -> tuple[int, int]:
    """The files and bytes `step` restores: its component's, and for a Director step also a copy of
    every component no step restores (the shared documents each Director node gets)."""
    parts = [by_component.get(step.component or "", (0, 0))]
    if step.id.startswith("director/"):
        parts += [work for c, work in by_component.items() if step_of_component(c) is None]
    return sum(n for n, _ in parts), sum(b for _, b in parts)


def read_progress(conn: Connection, run_id: str, totals: PlannedTotals) -> RunProgress:
    """The run's counters now (reads only)."""
    status, finished = conn.execute(
        "SELECT status, finished_at IS NOT NULL FROM omni.recovery_runs WHERE run_id = %s", (run_id,)
    ).fetchone() or ("unknown", True)
    steps = conn.execute(
        "SELECT step_id, phase, status, bytes_written FROM omni.recovery_steps WHERE run_id = %s "
        "ORDER BY started_at DESC NULLS LAST, step_id",
        (run_id,),
    ).fetchall()
    steps = [s for s in steps if not totals.work or s[0] in totals.work]
    files = conn.execute("SELECT count(*) FROM omni.restored_files WHERE run_id = %s", (run_id,)).fetchone()
    now = conn.execute("SELECT now()").fetchone()
    conn.commit()
    files_done, bytes_done = _done(steps, int(files[0]) if files else 0, totals)
    return RunProgress(
        run_id=run_id,
        status=str(status),
        finished=bool(finished),
        phase=str(steps[0][1]) if steps else "starting",
        running=tuple(sorted(str(s[0]) for s in steps if s[2] == RUNNING)),
        steps_done=sum(1 for s in steps if s[2] == SUCCEEDED),
        files_done=files_done,
        bytes_done=bytes_done,
        totals=totals,
        at=now[0] if now else datetime.now(),
    )


def _done(steps: list[tuple[Any, ...]], verified: int, totals: PlannedTotals) -> tuple[int, int]:
    """Files and bytes done of `steps` (id, phase, status, bytes_written), in the terms of `totals`."""
    if totals.files is None:  # nothing planned to compare with: the raw counters
        return verified, sum(int(s[3]) for s in steps)
    finished = [totals.work.get(str(s[0]), (0, 0)) for s in steps if s[2] == SUCCEEDED]
    running = sum(int(s[3]) for s in steps if s[2] == RUNNING)
    return max(verified, sum(n for n, _ in finished)), sum(b for _, b in finished) + running


def open_run_of_plan(conn: Connection, plan_id: str, since: datetime) -> str | None:
    """The plan's unfinished run, else its run finished since `since`, else None."""
    row = conn.execute(
        "SELECT run_id FROM omni.recovery_runs WHERE plan_id = %s "
        "AND (finished_at IS NULL OR finished_at >= %s) ORDER BY started_at DESC LIMIT 1",
        (plan_id, since),
    ).fetchone()
    conn.commit()
    return None if row is None else str(row[0])
