"""The recovery report's content, gathered from a run: its steps as recorded (but gate steps, which do
no work), the plan's adaptations, the verification steps as checks, what was recovered by component
kind, the command that resumes it, the new CA's fingerprint and where the post-recovery backup goes.

`write_run_report(recovery)` writes it into the workspace's reports/RUN folder: the run's builder
(pipelines/recovery_run.py) gives it to the run's context for the report step to call, and
`reported_if_stopped(recovery)` around the running of a run's steps writes it when a step stops
the run (on_failure: stop), so that every run that started has a report."""

from __future__ import annotations

import json
import shlex
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from omni_recovery.errors import DatabaseError, Interrupted, RecoveryError
from omni_recovery.execute.run_history import AttemptRecord, StepRecord, recent_runs, step_attempts
from omni_recovery.execute.tracking import FAILED, SUCCEEDED
from omni_recovery.report.render import AdaptationLine, CheckLine, RecoveryReport, StepTiming, write_report
from transforms.plan import is_gate
from transforms.recommendations import Recommendation, StepRow, recommend_for_plan

# Steps whose `wait` names what a running component shows (execute-plan checks their restored state).
_SHOWN_WHEN_RUNNING = ("director/", "orchestrator/", "service/", "application/")
_AFTER_REPORT = ("report", "post-recovery-backup")

if TYPE_CHECKING:
    from omni_recovery.execute.context import RunContext


def write_run_report(recovery: RunContext) -> Path:
    """Write the run's report (HTML and JSON) as it stands now; returns the HTML page's path."""
    folder = recovery.settings.workspace / "reports" / recovery.tracker.run_id
    _, html_path = write_report(build_report(recovery), folder)
    return html_path


@contextmanager
def reported_if_stopped(recovery: RunContext) -> Iterator[None]:
    """Around the running of a run's steps: when they stop the run with a RecoveryError, the report
    is written as the run stands and the error names it (not when the database itself went away)."""
    try:
        yield
    except DatabaseError:
        raise  # the report is read from the database that stopped answering
    except RecoveryError as exc:
        stopped = Interrupted if isinstance(exc, Interrupted) else RecoveryError
        raise stopped(f"{exc}. The report: {write_run_report(recovery)}") from exc


def build_report(recovery: RunContext) -> RecoveryReport:
    run = next(r for r in recent_runs(recovery.tracker.conn, limit=50) if r.run_id == recovery.tracker.run_id)
    steps = [
        StepTiming(
            s.step_id,
            s.phase,
            s.component_id,
            s.status,
            s.started_at,
            s.finished_at,
            s.bytes_written,
            s.attempts,
            s.detail,
        )
        for s in run.steps
        if not is_gate(s.step_id)  # a phase boundary: no work to show
    ]
    recovered: dict[str, list[str]] = defaultdict(list)
    for step in run.steps:
        if step.status == SUCCEEDED and step.component_id:
            kind, name = step.component_id.split(":", 1)
            recovered[kind].append(name)
    checks = [
        CheckLine(s.step_id, s.status == SUCCEEDED, _check_detail(s.detail))
        for s in run.steps
        if s.phase == "verification" and not is_gate(s.step_id)
    ]
    adaptations = [
        AdaptationLine(a.kind, a.subject, a.old, a.new, a.reason) for a in recovery.plan.adaptations
    ]
    failed = any(s.status == FAILED for s in run.steps)
    succeeded = {s.step_id for s in run.steps if s.status == SUCCEEDED}
    # The report and the post-recovery backup run after the report is written.
    complete = all(s.id in succeeded for s in recovery.selected_steps() if s.phase not in _AFTER_REPORT)
    notes = partial_notes(recovery) if recovery.options.applications else []
    return RecoveryReport(
        run_id=run.run_id,
        plan_id=run.plan_id,
        backup_set_id=recovery.plan.backup_set_id,
        status=FAILED if failed else SUCCEEDED,
        started_at=run.started_at,
        finished_at=datetime.now(UTC),
        steps=steps,
        adaptations=adaptations,
        checks=checks,
        recovered={k: sorted(v) for k, v in sorted(recovered.items())},
        notes=notes,
        after_boot=[
            f"{s.id}: {s.wait}"
            for s in recovery.plan.steps
            if s.id.startswith(_SHOWN_WHEN_RUNNING) and s.id in succeeded
        ],
        not_applied=[f"{s.step_id}: {line}" for s in run.steps for line in s.detail.get("not_applied", [])],
        resume_command=resume_command(recovery) if failed or not complete else "",
        ca_fingerprint=_ca_fingerprint(recovery),
        post_recovery_backup=_post_recovery_backup(recovery, complete=complete),
        earlier_attempts=earlier_attempts(run.steps, step_attempts(recovery.tracker.conn, run.run_id)),
        recommendations=_recommendations(recovery, steps, run.started_at),
        operators=run.operators,
    )


def earlier_attempts(steps: list[StepRecord], attempts: list[AttemptRecord]) -> list[str]:
    """One line per step run more than once: how it ended, then each earlier attempt with its error."""
    by_step: dict[str, list[AttemptRecord]] = defaultdict(list)
    for attempt in attempts:
        by_step[attempt.step_id].append(attempt)
    lines = []
    for step in steps:
        if step.attempts <= 1:
            continue
        before = sorted(
            (a for a in by_step[step.step_id] if a.attempt < step.attempts), key=lambda a: a.attempt
        )
        told = "; ".join(_attempt_line(a) for a in before) or "not recorded (run before attempts were kept)"
        lines.append(f"{step.step_id}: {step.status} at attempt {step.attempts}. Earlier: {told}")
    return lines


def _attempt_line(attempt: AttemptRecord) -> str:
    ended = attempt.outcome or "stopped (its process ended)"
    where = f" by {attempt.worker}" if attempt.worker else ""
    error = f": {attempt.error}" if attempt.error else ""
    return f"attempt {attempt.attempt} {ended} at {attempt.started_at:%Y-%m-%d %H:%M:%S}{where}{error}"


def partial_notes(recovery: RunContext) -> list[str]:
    """The chosen applications, the hard dependencies added for them and why, and those not added."""
    chosen = recovery.options.applications
    partial = recovery.partial
    if partial is None:
        return []
    notes = [f"partial restore of applications: {', '.join(chosen)}"]
    notes += [f"added for hard dependencies: {line}" for line in partial.added_lines()]
    notes += [f"not added, restored and verified before: {step}" for step in partial.already_restored]
    return notes


def _recommendations(
    recovery: RunContext, steps: list[StepTiming], started_at: datetime
) -> list[Recommendation]:
    """The analysis of the run so far: its finished steps' times and the plan's placements."""
    finished = [
        StepRow(s.step_id, s.phase, s.seconds, s.bytes_written) for s in steps if s.seconds is not None
    ]
    return recommend_for_plan(
        recovery.plan,
        finished,
        parallel_factor=recovery.options.parallel_factor,
        wall_seconds=(datetime.now(UTC) - started_at).total_seconds(),
    )


def resume_command(recovery: RunContext) -> str:
    """The command that continues this run: the same plan, applications and workspace."""
    words = ["omni-recovery", "execute-plan", "--plan", str(recovery.options.plan_path)]
    if recovery.options.applications:
        words += ["--applications", ",".join(recovery.options.applications)]
    if recovery.options.signing_key:
        words += ["--signing-key", str(recovery.options.signing_key)]
    words += ["--workspace", str(recovery.settings.workspace)]
    return shlex.join(words) + "   # with the same --passphrase-file or OMNI_RECOVERY_PASSPHRASE"


def _ca_fingerprint(recovery: RunContext) -> str:
    """The fingerprint of the CA this run issued, once issued (it is kept in the run's folder)."""
    stored = recovery.run_folder / "certificates.json"
    return str(json.loads(stored.read_text())["ca_fingerprint_sha256"]) if stored.exists() else ""


def _post_recovery_backup(recovery: RunContext, *, complete: bool) -> str:
    """Where the post-recovery backup goes (its step runs right after the report), when it will be made."""
    from omni_recovery.backup.post_recovery import post_recovery_output

    if recovery.options.signing_key is None or recovery.options.applications or not complete:
        return ""
    return str(post_recovery_output(recovery))


def _check_detail(detail: dict[str, object]) -> str:
    if "error" in detail:
        return str(detail["error"])
    return f"{detail.get('checked', 0)} entries checked"
