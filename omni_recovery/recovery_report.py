"""The recovery report's content, gathered from a run: its steps as recorded, the plan's adaptations,
the verification steps as checks, and what was recovered by component kind."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from omni_recovery.report import AdaptationLine, CheckLine, RecoveryReport, StepTiming
from omni_recovery.tracking import FAILED, SUCCEEDED, recent_runs

# Steps whose `wait` names what a running component shows (execute-plan checks their restored state).
_SHOWN_WHEN_RUNNING = ("director/", "orchestrator/", "service/", "application/")

if TYPE_CHECKING:
    from omni_recovery.recovery import Recovery


def build_report(recovery: Recovery) -> RecoveryReport:
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
    ]
    recovered: dict[str, list[str]] = defaultdict(list)
    for step in run.steps:
        if step.status == SUCCEEDED and step.component_id:
            kind, name = step.component_id.split(":", 1)
            recovered[kind].append(name)
    checks = [
        CheckLine(s.step_id, s.status == SUCCEEDED, _check_detail(s.detail))
        for s in run.steps
        if s.phase == "verification"
    ]
    adaptations = [
        AdaptationLine(a.kind, a.subject, a.old, a.new, a.reason) for a in recovery.plan.adaptations
    ]
    failed = any(s.status == FAILED for s in run.steps)
    succeeded = {s.step_id for s in run.steps if s.status == SUCCEEDED}
    notes = (
        [f"partial restore of applications: {', '.join(recovery.options.applications)}"]
        if recovery.options.applications
        else []
    )
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
    )


def _check_detail(detail: dict[str, object]) -> str:
    if "error" in detail:
        return str(detail["error"])
    return f"{detail.get('checked', 0)} entries checked"
