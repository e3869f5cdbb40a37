"""The verification steps: the restored layout and certificates, then every restored byte.

`verify/components` checks every selected layout file is in place (execute/verification.py) and,
on each node whose Director this run restored, that the CA key and certificate belong together
and the node's certificate is signed by that CA. The data step checks every restored file against
the backup's digests (re-hashing them all with --reverify). Problems fail the step, naming them.
"""

from __future__ import annotations

from omni_recovery.errors import RecoveryError
from omni_recovery.execute.context import RunContext
from omni_recovery.execute.options import StepOutcome
from omni_recovery.execute.tracking import SUCCEEDED
from omni_recovery.execute.verification import verify_data, verify_layout
from omni_recovery.restorer.certificates import pki_problems
from transforms.plan import Step
from transforms.target_layout import node_root


def verify_step(context: RunContext, step: Step) -> StepOutcome:
    selected = context.selected_files()
    if step.id.endswith("components"):
        problems = verify_layout(context.layout, context.roots, selected)
        problems += _certificate_problems(context)
    else:
        problems = verify_data(
            context.roots,
            context.entries_by_env_path,
            selected,
            context.tracker.verified_files,
            context.progress,
            rehash=context.options.reverify,
        )
    if problems:
        raise RecoveryError(f"{step.id}: {len(problems)} problem(s): " + "; ".join(problems[:5]))
    return StepOutcome(SUCCEEDED, 0, {"checked": len(selected)})


def _certificate_problems(context: RunContext) -> list[str]:
    """On each node whose Director this run restored: a CA key and certificate that belong
    together, and the node's certificate signed by that CA."""
    problems = []
    for step in context.selected_steps():
        if step.id.startswith("director/") and step.node:
            target = context.roots[node_root(step.node)]
            paths = ("keys/ca.crt", "keys/ca.key", f"keys/{step.node}.crt")
            missing = [path for path in paths if not target.exists(path)]
            if missing:
                found = [f"{', '.join(missing)} missing"]
            else:
                found = pki_problems(*(target.read_bytes(path) for path in paths))
            problems += [f"{target.url}: {problem}" for problem in found]
    return problems
