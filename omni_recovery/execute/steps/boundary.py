"""A gate step: the boundary between two phases, on the control node, with nothing to do.

Its phase's steps depend on it and it on the last steps of the previous phase, so by the time it
runs the previous phase has ended; it succeeds at once and is recorded like any step (a resumed run
skips it when it had succeeded, as any step outside verification and report).
"""

from __future__ import annotations

from omni_recovery.execute.context import RunContext
from omni_recovery.execute.options import StepOutcome
from omni_recovery.execute.tracking import SUCCEEDED
from transforms.plan import Step


def pass_gate(context: RunContext, step: Step) -> StepOutcome:
    return StepOutcome(SUCCEEDED, 0, {})
