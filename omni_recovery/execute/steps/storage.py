"""The storage steps: each pool's root made ready before any volume is written to it.

A pool's root must take a new file (a probe is written and removed: a read-only root fails here,
naming itself, not in the middle of a volume), gets the Directors' storage folders, and its
filesystem must have room for what the selected steps still write to it, from every root on that
filesystem, files already verified in this run not counted.
"""

from __future__ import annotations

from typing import Any

from omni_recovery.errors import RecoveryError
from omni_recovery.execute.context import RunContext
from omni_recovery.execute.options import StepOutcome
from omni_recovery.execute.tracking import SUCCEEDED
from transforms.plan import Step
from transforms.target_layout import pool_root

# Written and removed under each storage root before volumes go there: it must take new files.
WRITE_PROBE = "omni-write-check"


def prepare_storage(context: RunContext, step: Step) -> StepOutcome:
    """The step's wait condition: the pool's root is writable and has room for what this recovery
    still writes to its filesystem."""
    pool = step.id.rsplit("/", 1)[1]
    target = context.target(pool_root(pool))
    target.begin(WRITE_PROBE).abort()
    plan = context.plan
    folders = [p for p in plan.paths if p.pool == pool and p.subject.startswith("director:")]
    for path in folders:
        root_url = next(p.root for p in plan.pools if p.name == pool)
        target.makedirs(path.new_path.removeprefix(root_url).strip("/"))
    detail = {"root": target.url, "folders": len(folders), **_check_free_space(context, pool_root(pool))}
    return StepOutcome(SUCCEEDED, 0, detail)


def _check_free_space(context: RunContext, root: str) -> dict[str, Any]:
    """Refuse when the selected steps still have more to write to the filesystem under `root`, from
    every root on it (files already verified in this run not counted), than it has free."""
    space = context.target(root).free_space()
    if space is None:
        return {"free_space": "not known: this kind of root does not tell"}
    on_it = {name: other.free_space() for name, other in context.roots.items()}
    sharing = sorted(name for name, other in on_it.items() if other and other.device == space.device)
    selected = {s.id for s in context.selected_steps()}
    verified = {name: context.tracker.verified_files(name) for name in sharing}
    needed = sum(
        context.file_bytes(f)
        for step_id, files in context.files_by_step.items()
        if step_id in selected
        for f in files
        if f.root in verified and f.relpath not in verified[f.root]
    )
    if needed > space.free:
        raise RecoveryError(
            f"the filesystem of {context.root_urls[root]} has {_size(space.free)} free, and this recovery "
            f"still writes {_size(needed)} to it (roots on it: {', '.join(sharing)}): make room there, "
            "or give the volumes another pool in the plan's paths"
        )
    return {"bytes_to_write": needed, "free_bytes": space.free, "roots_on_filesystem": sharing}


def _size(amount: int) -> str:
    return f"{amount / 2**30:.2f} GiB ({amount:,} bytes)"
