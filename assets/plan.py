"""The recovery plan: the adapted environment as a DAG of steps in phases, written, pictured and recorded.

How it works
------------
`recovery_plan` (group `plan`) generates the plan of the source environment onto the inventory
(`transforms.plan.generate_plan`, which runs the same pure adaptations as the `adaptation` group
and validates the result), then does what `plan-generate` does: writes the YAML a person reads and
may edit and the SVG picture of its phase/step graph beside it, at
`<workspace>/plans/<plan id>/recovery-plan.yaml` (each file appears only when whole), records
where its set and inventory are beside it (so `execute-plan --plan` needs nothing else), and stores
the plan and every adaptation in the recovery database (once per plan id). Its metadata: the plan's
path and its picture's path, plan id, steps by phase and adaptations by kind.

What can go wrong
-----------------
The plan's adaptations must be exactly those the adaptation assets recorded: when they are not (the
inventory or the mode changed since those were materialised) the asset fails and asks for the
`adaptation` group to be materialised again, so that the UI never shows adaptations the plan does
not hold. An inventory too small fails upstream with `AdaptationError`.
"""

from collections import Counter
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets.adaptation import (
    ADAPTATION_GROUP_ASSETS,
    PlanningResource,
    adaptations_metadata,
    table_preview,
)
from omni_recovery.db.schema import init_database
from omni_recovery.db.server import database_url
from omni_recovery.errors import RecoveryError
from omni_recovery.plan.generate import (
    SetEnvironment,
    plan_id,
    plan_warnings,
    record_plan_source,
    store_plan,
    with_document_warnings,
    write_plan_files,
)
from transforms.adapt.hardware import HardwarePlan
from transforms.adapt.network import NetworkPlan
from transforms.adapt.storage_paths import StoragePlan
from transforms.plan import PHASES, generate_plan, plan_tables, step_count

__all__ = ["ADAPTATION_ASSETS", "GROUP", "PLAN_FILE", "plan_path", "recovery_plan"]

GROUP = "plan"
PLAN_FILE = "recovery-plan.yaml"
CREATED_BY = "dagster:recovery_plan"


def plan_path(workspace: Path, pid: str) -> Path:
    """Where the plan with id `pid` is written in `workspace`."""
    return workspace / "plans" / pid / PLAN_FILE


@asset(group_name=GROUP, deps=["resource_scaling"])
def recovery_plan(
    context: AssetExecutionContext,
    planning: PlanningResource,
    source_environment: SetEnvironment,
    hardware_mapping: HardwarePlan,
    network_adaptation: NetworkPlan,
    storage_redirection: StoragePlan,
) -> MaterializeResult:
    """The recovery plan (phases, steps, dependencies, waits, fallbacks, every adaptation) as YAML with
    an SVG of its graph under <workspace>/plans/<plan id>/, recorded in the recovery database."""
    inventory_file = planning.inventory_file()
    settings = planning.settings()
    warnings = plan_warnings(source_environment.documents, settings.workspace)
    for warning in warnings:
        context.log.warning(f"{warning.subject}: {warning.reason}")
    plan = generate_plan(
        source_environment.environment,
        planning.inventory(),
        planning.mode(),
        source_environment.backup_set_id,
        planning.policy(),
        warnings=warnings,
    )
    upstream = hardware_mapping.adaptations + network_adaptation.adaptations + storage_redirection.adaptations
    upstream += warnings
    if plan.adaptations != upstream:
        raise RecoveryError(
            f"the plan has {len(plan.adaptations)} adaptations, the adaptation assets {len(upstream)}: "
            "the inventory or the adaptation mode changed since they were materialised; "
            "materialise the adaptation group again"
        )
    plan = with_document_warnings(plan, source_environment.documents)
    pid = plan_id(plan)
    output = plan_path(settings.workspace, pid)
    svg = write_plan_files(plan, output)
    _, location = planning.registered_set(plan.backup_set_id)
    record_plan_source(output, location, inventory_file, settings.workspace)
    url = database_url(settings)
    init_database(url)
    stored = store_plan(url, plan, created_by=CREATED_BY)
    context.log.info(f"plan {stored}: {step_count(plan)} written to {output}")
    phases = Counter(step.phase for step in plan.steps if not step.is_gate)
    steps = plan_tables(plan)["plan_steps"].select(
        "id", "phase", "action", "component", "node", "depends_on", "on_failure"
    )
    metadata: dict[str, Any] = {
        **adaptations_metadata(plan.backup_set_id, plan.adaptations),
        "plan_id": pid,
        "path": MetadataValue.path(str(output)),
        "svg": MetadataValue.path(str(svg)),
        "adaptation_mode": plan.adaptation_mode,
        "sha256": plan.sha256,
        "dagster/row_count": len(plan.steps),
        "steps_by_phase": MetadataValue.json({p: phases[p] for p in PHASES if phases[p]}),
        "gates": sum(1 for step in plan.steps if step.is_gate),
        "steps": table_preview(steps, limit=len(plan.steps)),
        "warnings": MetadataValue.json([f"{w.subject}: {w.reason}" for w in warnings]),
    }
    return MaterializeResult(metadata=metadata)


ADAPTATION_ASSETS = [*ADAPTATION_GROUP_ASSETS, recovery_plan]
