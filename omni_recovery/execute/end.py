"""The run's end: a recovery run is closed as succeeded only once every selected step has.

`finish` closes the run, or records it as interrupted and refuses, naming the steps that have not
succeeded (execute-plan of the same plan runs them again). The post-recovery backup does not count:
it is skipped without a signing key, and a recovery is whole without it.
"""

from __future__ import annotations

from omni_recovery.errors import RecoveryError, some_of
from omni_recovery.execute.context import RunContext
from omni_recovery.execute.tracking import SUCCEEDED


def finish(context: RunContext) -> None:
    """Close the run as succeeded (only once every selected step has)."""
    missing = not_succeeded(context)
    if missing:
        message = f"the run is not complete: {len(missing)} step(s) have not succeeded: {some_of(missing, 5)}"
        context.tracker.interrupt(message)
        raise RecoveryError(message + "; execute-plan again runs them again")
    context.tracker.finish(SUCCEEDED)


def not_succeeded(context: RunContext) -> list[str]:
    """The selected steps, but for the post-recovery backup, that have not succeeded in this run."""
    done = context.tracker.succeeded_steps()
    return [s.id for s in context.selected_steps() if s.id not in done and not s.id.startswith("backup/")]
