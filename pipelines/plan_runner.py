"""What `plan-generate` calls for a registered set: the `plan_recovery` job, as the UI runs it.

How it works: `plan_registered_set` runs the named job `plan_recovery` (the adaptation assets and
`recovery_plan`) in this process, in the workspace's Dagster instance, with the `planning`
resource configured for the set, the inventory and the mode. `recovery_plan` writes the plan under
`<workspace>/plans/<plan id>/` and stores it; the command line then copies the plan and its picture
to where it was asked to write them. So every plan the command line makes of a registered set is a
materialisation the UI shows, with its adaptations.

What can go wrong: an inventory too small or malformed fails its adaptation asset; the library's own
error (`AdaptationError`, `InventoryError`) is raised, not Dagster's wrapper.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dagster import AssetKey, DagsterEventType

from omni_recovery.settings import Settings
from pipelines.definitions import build_definitions
from pipelines.runner import QUIET_CONSOLE, dagster_instance, run_job, user_error

__all__ = ["PlannedSet", "plan_registered_set"]


@dataclass(frozen=True)
class PlannedSet:
    plan_path: Path
    svg_path: Path
    plan_id: str
    run_id: str


def plan_registered_set(
    settings: Settings,
    backup_set_id: str,
    inventory: Path,
    mode: str,
    *,
    allow_system_root: bool = False,
    log_level: str = QUIET_CONSOLE,
) -> PlannedSet:
    """Run `plan_recovery` for the registered set `backup_set_id` onto `inventory`: where it wrote it."""
    planning = {
        "workspace": str(settings.workspace),
        "inventory_path": str(inventory),
        "backup_set_id": backup_set_id,
        "adaptation_mode": mode,
        "allow_system_root": allow_system_root,
        "database_url": settings.database_url or "",
    }
    run_config = {
        "resources": {"planning": {"config": planning}},
        "loggers": {"console": {"config": {"log_level": log_level}}},
    }
    instance = dagster_instance(settings)
    try:
        run_id = run_job(build_definitions(settings), "plan_recovery", instance, run_config=run_config)
    except Exception as exc:
        raise user_error(exc, settings.dagster_home) from exc
    events = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
    metadata = next(
        e.asset_materialization.metadata
        for e in events
        if e.asset_materialization and e.asset_materialization.asset_key == AssetKey("recovery_plan")
    )
    return PlannedSet(
        plan_path=Path(str(metadata["path"].value)),
        svg_path=Path(str(metadata["svg"].value)),
        plan_id=str(metadata["plan_id"].value),
        run_id=run_id,
    )
