"""The steps after verification: the recovery report and the post-recovery backup.

The report is written by the writer the run's builder gave the context (the report stage is not
imported here). The post-recovery backup is made only with a signing key and only of a whole
recovery: any selected step that has not succeeded skips it, naming the steps.
"""

from __future__ import annotations

from omni_recovery.execute.context import RunContext
from omni_recovery.execute.end import not_succeeded
from omni_recovery.execute.options import StepOutcome
from omni_recovery.execute.tracking import SKIPPED, SUCCEEDED
from transforms.plan import Step


def write_report(context: RunContext, step: Step) -> StepOutcome:
    return StepOutcome(SUCCEEDED, 0, {"report": str(context.write_report(context))})


def post_recovery_backup(context: RunContext, step: Step) -> StepOutcome:
    if context.options.signing_key is None:
        return StepOutcome(SKIPPED, 0, {"reason": "no --signing-key given for the post-recovery backup"})
    missing = not_succeeded(context)
    if missing:
        reason = f"not a backup of a partial recovery: {', '.join(missing[:5])} did not succeed"
        return StepOutcome(SKIPPED, 0, {"reason": reason})
    from omni_recovery.backup.post_recovery import post_recovery_backup as back_up  # the ISO writer

    output = back_up(context, context.options.signing_key, context.passphrase)
    return StepOutcome(SUCCEEDED, 0, {"backup": output})
