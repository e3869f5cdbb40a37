"""The restore assets: one per phase of the recovery plan, each a thin call into
omni_recovery.execute (through their `recovery` resource, pipelines/recovery_run.py).

Directors → ring → Orchestrators → cluster → storage → volumes → core services → applications
(critical, standard, low) → verification → report → post-recovery backup. Volumes and
applications are partitioned by application (dynamic partitions `applications`), so a backfill of
some applications in the Dagster UI does what `execute-plan --applications a,b` does, and their
materialisations name the applications added for hard dependencies. `restored_directors` depends on
the plan and the deep validation, so the lineage runs catalog → validation → plan → restore. The work of
each phase, its tracking in the recovery database and its resume after a kill all live in
omni_recovery/execute/; an asset only says which phases (and which applications) it runs and records what
they did as metadata.
"""

import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    BetaWarning,
    DynamicPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

# One run per key range is what partial restores need; dagster marks `backfill_policy` beta, and says so
# on every import otherwise.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=BetaWarning)

APPLICATION_PARTITIONS = DynamicPartitionsDefinition(name="applications")
GROUP = "restore"
APPLICATION_PHASES = ("applications-critical", "applications-standard", "applications-low")
ASSET_PHASES: dict[str, tuple[str, ...]] = {}  # asset name → the plan phases it runs


class RecoverySession(Protocol):
    """What the restore assets need from their `recovery` resource (pipelines.recovery_run.RestoreSession)."""

    @property
    def added_applications(self) -> list[str]: ...

    def run_phases(
        self, phases: Iterable[str], applications: Iterable[str] | None = None
    ) -> Mapping[str, Any]: ...


def _result(outcomes: Mapping[str, Any], **extra: Any) -> MaterializeResult:
    statuses = [o.status for o in outcomes.values()]
    metadata: dict[str, Any] = {
        "steps": len(outcomes),
        "succeeded": statuses.count("succeeded"),
        "skipped": statuses.count("skipped"),
        "failed": statuses.count("failed"),  # only steps whose on_failure lets the run go on
        "bytes_written": sum(o.bytes_written for o in outcomes.values()),
        "step_ids": MetadataValue.json(sorted(outcomes)),
        **_written(outcomes),
        **extra,
    }
    return MaterializeResult(metadata=metadata)


def _written(outcomes: Mapping[str, Any]) -> dict[str, MetadataValue]:
    """What a phase wrote for the operator (the report, the post-recovery backup) as a path and a
    file URL, which the UI shows as links on the materialisation."""
    links: dict[str, MetadataValue] = {}
    for what in ("report", "backup"):
        found = [str(o.detail[what]) for o in outcomes.values() if o.detail.get(what)]
        if found:
            links[what] = MetadataValue.path(found[-1])
            if "://" not in found[-1]:
                links[f"{what}_url"] = MetadataValue.url(Path(found[-1]).as_uri())
    return links


def _phase_asset(name: str, phases: tuple[str, ...], deps: list[str], description: str) -> Any:
    ASSET_PHASES[name] = phases

    @asset(
        name=name, group_name=GROUP, deps=deps, description=description, required_resource_keys={"recovery"}
    )
    def _restore(context: AssetExecutionContext) -> MaterializeResult:
        return _result(context.resources.recovery.run_phases(phases))

    return _restore


def _application_asset(name: str, phases: tuple[str, ...], deps: list[str], description: str) -> Any:
    ASSET_PHASES[name] = phases

    @asset(
        name=name,
        group_name=GROUP,
        deps=deps,
        description=description,
        partitions_def=APPLICATION_PARTITIONS,
        backfill_policy=BackfillPolicy.single_run(),
        required_resource_keys={"recovery"},
    )
    def _restore(context: AssetExecutionContext) -> MaterializeResult:
        recovery: RecoverySession = context.resources.recovery
        applications = list(context.partition_keys)
        outcomes = recovery.run_phases(phases, applications)
        added = [a for a in recovery.added_applications if a not in applications]
        return _result(
            outcomes,
            applications=MetadataValue.json(applications),
            hard_dependencies_added=MetadataValue.json(added),
        )

    return _restore


restored_directors = _phase_asset(
    "restored_directors",
    ("directors",),
    ["recovery_plan", "deep_validation"],
    "Directors installed with their adapted configuration, state and new certificates.",
)
director_ring = _phase_asset(
    "director_ring",
    ("ring",),
    ["restored_directors"],
    "The Director ring: same membership, epoch and quorum on every Director.",
)
restored_orchestrators = _phase_asset(
    "restored_orchestrators",
    ("orchestrators",),
    ["director_ring"],
    "Orchestrator VMs, configuration and database tables.",
)
orchestrator_cluster = _phase_asset(
    "orchestrator_cluster",
    ("cluster",),
    ["restored_orchestrators"],
    "The Orchestrator cluster with a deterministic leader.",
)
restored_storage = _phase_asset(
    "restored_storage",
    ("storage",),
    ["orchestrator_cluster"],
    "Storage roots prepared and the storage service restored.",
)
restored_volumes = _application_asset(
    "restored_volumes",
    ("volumes",),
    ["restored_storage"],
    "Volume data of each application, every byte verified.",
)
restored_core_services = _phase_asset(
    "restored_core_services",
    ("core-services",),
    ["restored_volumes"],
    "Core services: auth, monitoring, logging, DNS, …",
)
restored_applications = _application_asset(
    "restored_applications",
    APPLICATION_PHASES,
    ["restored_core_services", "restored_volumes"],
    "Applications by priority, bound to their restored volumes and recreated in their Orchestrator.",
)
recovery_verification = _phase_asset(
    "recovery_verification",
    ("verification",),
    ["restored_applications"],
    "Everything restored checked against the layout and re-hashed.",
)
recovery_report = _phase_asset(
    "recovery_report", ("report",), ["recovery_verification"], "The recovery report: HTML timeline and JSON."
)
post_recovery_backup = _phase_asset(
    "post_recovery_backup",
    ("post-recovery-backup",),
    ["recovery_report"],
    "The first backup of the restored environment.",
)

RESTORE_ASSETS = [
    restored_directors,
    director_ring,
    restored_orchestrators,
    orchestrator_cluster,
    restored_storage,
    restored_volumes,
    restored_core_services,
    restored_applications,
    recovery_verification,
    recovery_report,
    post_recovery_backup,
]
# The order the command line runs them in, one materialisation each (partitioned ones over a key range).
RESTORE_ORDER = [
    [restored_directors, director_ring, restored_orchestrators, orchestrator_cluster, restored_storage],
    [restored_volumes],
    [restored_core_services],
    [restored_applications],
    [recovery_verification, recovery_report, post_recovery_backup],
]
