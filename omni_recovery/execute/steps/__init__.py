"""One handler per kind of plan step, each `handler(context, step) -> StepOutcome`.

A step's kind is the first part of its id (`ring/main` → ring). Directors, Orchestrators, services,
volumes and applications restore their component's files (`restore`); the ring and the cluster are
formed (`membership`); storage roots are made ready (`storage`); verification, report and the
post-recovery backup close the run (`verify`, `closing`); a gate between two phases does nothing
(`boundary`). A handler raises RecoveryError to fail
its step; the runner (execute/runner.py) retries it and applies its on_failure.
"""

from __future__ import annotations

from collections.abc import Callable

from omni_recovery.execute.context import RunContext
from omni_recovery.execute.options import StepOutcome
from omni_recovery.execute.steps.boundary import pass_gate
from omni_recovery.execute.steps.closing import post_recovery_backup, write_report
from omni_recovery.execute.steps.membership import form_director_ring, form_orchestrator_cluster
from omni_recovery.execute.steps.restore import restore_component
from omni_recovery.execute.steps.storage import prepare_storage
from omni_recovery.execute.steps.verify import verify_step
from transforms.plan import GATE, Step

Handler = Callable[[RunContext, Step], StepOutcome]
HANDLERS: dict[str, Handler] = {
    "ring": form_director_ring,
    "cluster": form_orchestrator_cluster,
    "storage": prepare_storage,
    "verify": verify_step,
    "report": write_report,
    "backup": post_recovery_backup,
    GATE: pass_gate,
}


def run_step(context: RunContext, step: Step) -> StepOutcome:
    """Run `step` by the handler of its kind (restoring its component's files unless named above)."""
    handler = HANDLERS.get(step.kind, restore_component)
    return handler(context, step)
