"""Adaptation: the backup set's environment read from its ISOs and adapted to the target inventory.

How it works: group `adaptation`, unpartitioned, each asset a thin call into the pure transforms:
- `source_environment`: the environment the set holds (`planning.open_set` + `read_set_environment`:
  every ISO opened once, the small documents read through the verifying reader). Which set: the
  `planning` resource's `backup_set_id`, else the most recently registered set (`register-isos`).
- `hardware_mapping`: old nodes onto the inventory's nodes and every VM placed on a Director
  (`transforms.adapt.hardware.place_environment`, which scales requests as it places them).
- `resource_scaling`: the CPU and memory of each VM before and after that placement, as their own
  table (read from the hardware plan, not computed again).
- `network_adaptation`: subnets, addresses, routes, policies, DNS, links and MACs
  (`transforms.adapt.network.adapt_network`, onto the node mapping above).
- `storage_redirection`: every volume and Director path moved under a storage root of the inventory
  (`transforms.adapt.storage_paths.redirect_storage`).
The values passed on are the transforms' small objects (dataclasses holding polars tables), stored by
the default IO manager; each asset records its row count, adaptations by kind, the set id and a
preview as metadata for the Dagster UI. `assets/plan.py` turns them into the recovery plan.

What can go wrong: no registered set (or the named one not registered) fails `source_environment`
saying to run `register-isos`; a damaged ISO fails it naming ISO and path. An inventory too small
fails the adaptation that does not fit with `AdaptationError` saying what does not fit and by how
much. A missing or malformed inventory fails with the file and line at fault.
"""

from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import polars as pl
from dagster import (
    AssetExecutionContext,
    ConfigurableResource,
    MetadataValue,
    Output,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)

from assets.checks import trusted_signers
from omni_recovery.adapt.inventory import Inventory, load_inventory
from omni_recovery.errors import RecoveryError
from omni_recovery.plan.generate import SetEnvironment, open_set, read_set_environment
from omni_recovery.register.registered_sets import registered_set_location
from omni_recovery.settings import Settings, code_location_passphrase, load_settings
from omni_recovery.validate import ValidationReport, validate
from omni_recovery.validate.problems import Problem
from transforms.adapt.hardware import HardwarePlan, place_environment
from transforms.adapt.network import NetworkPlan, adapt_network
from transforms.adapt.storage_paths import StoragePlan, redirect_storage
from transforms.adapt.vocabulary import ADAPTATION_MODES, Adaptation, AdaptationPolicy

__all__ = [
    "ADAPTATION_GROUP_ASSETS",
    "GROUP",
    "INVENTORY_FILE",
    "PlanningResource",
    "adaptations_metadata",
    "hardware_mapping",
    "network_adaptation",
    "resource_scaling",
    "scaling_table",
    "source_environment",
    "storage_redirection",
    "table_preview",
]

GROUP = "adaptation"
INVENTORY_FILE = "inventory.yaml"
PREVIEW_ROWS = 50
HARDWARE_KINDS = ("node", "placement")
SCALING_KINDS = ("scaling",)


class PlanningResource(ConfigurableResource):
    """What to plan and onto what: the workspace, the target inventory, the set and the adaptation mode.

    `backup_set_id` empty: the most recently registered set. `inventory_path` empty: the workspace's
    `inventory.yaml`. `database_url` empty: OMNI_RECOVERY_DATABASE_URL, else the embedded server.
    """

    workspace: str
    inventory_path: str = ""
    backup_set_id: str = ""
    adaptation_mode: str = "basic"
    database_url: str = ""
    allow_system_root: bool = False

    def settings(self) -> Settings:
        settings = load_settings(self.workspace)
        if self.database_url:
            return Settings(workspace=settings.workspace, database_url=self.database_url)
        return settings

    def registered_set(self, backup_set_id: str | None = None) -> tuple[str, str]:
        """(backup_set_id, folder URL) of the set named here, else the configured one, else the most
        recently registered one."""
        return registered_set_location(self.settings(), backup_set_id or self.backup_set_id or None)

    def inventory_file(self) -> Path:
        return Path(self.inventory_path) if self.inventory_path else Path(self.workspace) / INVENTORY_FILE

    def inventory(self) -> Inventory:
        path = self.inventory_file()
        if not path.is_file():
            raise RecoveryError(
                f"the target inventory {path} does not exist: configure "
                "resources.planning.config.inventory_path (or put inventory.yaml in the workspace)"
            )
        return load_inventory(path, allow_system_root=self.allow_system_root)

    def mode(self) -> str:
        if self.adaptation_mode not in ADAPTATION_MODES:
            raise RecoveryError(
                f"unknown adaptation mode {self.adaptation_mode!r} (known: {', '.join(ADAPTATION_MODES)})"
            )
        return self.adaptation_mode

    def policy(self) -> AdaptationPolicy:
        return AdaptationPolicy()

    def deep_validator(self) -> Callable[[str], tuple[ValidationReport, list[Problem]]]:
        """Deep validation of a folder with the passphrase and trusted keys of the code location's
        environment (read now, so that none fails before anything is read), and the problems of
        unusable trusted key specs."""
        passphrase = code_location_passphrase()
        trusted, preset = trusted_signers()
        return lambda folder: (validate(folder, trusted, passphrase, deep=True), preset)


# -- metadata helpers --------------------------------------------------------------------------------


def table_preview(frame: pl.DataFrame, limit: int = PREVIEW_ROWS) -> MetadataValue[Any]:
    """The first `limit` rows of `frame` as a Dagster table (strings, numbers, booleans, nulls)."""
    schema = TableSchema(
        columns=[TableColumn(name, _column_type(dtype)) for name, dtype in frame.schema.items()]
    )
    records = [
        TableRecord(
            {k: v if v is None or isinstance(v, bool | int | float | str) else str(v) for k, v in row.items()}
        )
        for row in frame.head(limit).iter_rows(named=True)
    ]
    return MetadataValue.table(records, schema)


def _column_type(dtype: pl.DataType) -> str:
    if dtype.is_integer():
        return "int"
    if dtype.is_float():
        return "float"
    return "bool" if dtype == pl.Boolean else "string"


def adaptations_metadata(
    backup_set_id: str, adaptations: Iterable[Adaptation], kinds: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """backup_set_id, the number of adaptations (of `kinds`, when given) and their count by kind."""
    chosen = [a for a in adaptations if kinds is None or a.kind in kinds]
    return {
        "backup_set_id": backup_set_id,
        "adaptations": len(chosen),
        "adaptations_by_kind": MetadataValue.json(dict(sorted(Counter(a.kind for a in chosen).items()))),
    }


def _adaptation_frame(adaptations: Iterable[Adaptation]) -> pl.DataFrame:
    rows = [
        {"kind": a.kind, "subject": a.subject, "old": a.old, "new": a.new, "reason": a.reason}
        for a in adaptations
    ]
    schema = dict.fromkeys(("kind", "subject", "old", "new", "reason"), pl.String)
    return pl.DataFrame(rows, schema=schema)


def scaling_table(hardware: HardwarePlan) -> pl.DataFrame:
    """Every VM's CPU and memory before and after placement, with the factors and whether it changed."""
    return hardware.placements.select(
        "vm_id",
        "name",
        "role",
        "component",
        "priority",
        "old_cpu",
        "cpu",
        "old_memory_mib",
        "memory_mib",
        (pl.col("cpu") / pl.col("old_cpu")).round(3).alias("cpu_factor"),
        (pl.col("memory_mib") / pl.col("old_memory_mib")).round(3).alias("memory_factor"),
        ((pl.col("cpu") != pl.col("old_cpu")) | (pl.col("memory_mib") != pl.col("old_memory_mib"))).alias(
            "scaled"
        ),
    )


# -- assets ------------------------------------------------------------------------------------------


@asset(group_name=GROUP)
def source_environment(planning: PlanningResource) -> Output[SetEnvironment]:
    """The environment held by the backup set (configured, else the most recently registered), read
    from its ISOs through the verifying reader: Directors, VMs, applications, volumes, network."""
    set_id, location = planning.registered_set()
    with open_set(location) as readers:
        source = read_set_environment(readers)
    if source.backup_set_id != set_id:
        raise RecoveryError(f"the set registered as {set_id} in {location} holds {source.backup_set_id}")
    env = source.environment
    return Output(
        source,
        metadata={
            "backup_set_id": set_id,
            "location": location,
            "environment": env.name,
            "directors": len(env.directors),
            "nodes": len(env.nodes),
            "vms": len(env.vms),
            "applications": len(env.applications),
            "volumes": len(env.volumes),
            "documents": len(source.documents),
            "dagster/row_count": len(source.entries),
        },
    )


@asset(group_name=GROUP)
def hardware_mapping(
    context: AssetExecutionContext, planning: PlanningResource, source_environment: SetEnvironment
) -> Output[HardwarePlan]:
    """Old nodes mapped onto the inventory's nodes by capacity, and every VM placed on a Director within
    its capacity (requests scaled as needed: see resource_scaling)."""
    mode = planning.mode()
    hardware = place_environment(
        source_environment.environment, planning.inventory(), mode, planning.policy()
    )
    nodes = pl.DataFrame(
        [
            {"old_node": m.old_node, "new_node": m.new_node, "role": m.role, "director": m.director}
            for m in hardware.mapping.nodes
        ],
        schema=dict.fromkeys(("old_node", "new_node", "role", "director"), pl.String),
    )
    moved = hardware.placements.filter(pl.col("director") != pl.col("old_director")).height
    context.log.info(f"{nodes.height} node mappings, {hardware.placements.height} VMs placed, {moved} moved")
    return Output(
        hardware,
        metadata={
            **adaptations_metadata(source_environment.backup_set_id, hardware.adaptations, HARDWARE_KINDS),
            "adaptation_mode": mode,
            "dagster/row_count": hardware.placements.height,
            "vms_moved": moved,
            "nodes_retired": nodes.filter(pl.col("new_node").is_null()).height,
            "nodes_spare": nodes.filter(pl.col("old_node").is_null()).height,
            "node_mapping": table_preview(nodes),
            "placements": table_preview(hardware.placements),
        },
    )


@asset(group_name=GROUP)
def resource_scaling(
    source_environment: SetEnvironment, hardware_mapping: HardwarePlan
) -> Output[pl.DataFrame]:
    """CPU and memory of every VM before and after it was fitted to the new Directors (application VMs
    scaled within the policy's bounds; the control plane never), with the scaling adaptations."""
    table = scaling_table(hardware_mapping)
    scaling = [a for a in hardware_mapping.adaptations if a.kind in SCALING_KINDS]
    return Output(
        table,
        metadata={
            **adaptations_metadata(source_environment.backup_set_id, scaling),
            "dagster/row_count": table.height,
            "vms_scaled": int(table["scaled"].sum()),
            "cpu_before": int(table["old_cpu"].sum()),
            "cpu_after": int(table["cpu"].sum()),
            "memory_mib_before": int(table["old_memory_mib"].sum()),
            "memory_mib_after": int(table["memory_mib"].sum()),
            "scaled_vms": table_preview(table.filter(pl.col("scaled"))),
            "scaling_adaptations": table_preview(_adaptation_frame(scaling)),
        },
    )


@asset(group_name=GROUP)
def network_adaptation(
    planning: PlanningResource, source_environment: SetEnvironment, hardware_mapping: HardwarePlan
) -> Output[NetworkPlan]:
    """Old subnets onto the inventory's, every address re-allocated without collisions, and routes,
    policies, DNS, links and NIC MACs rewritten through the address map."""
    network = adapt_network(source_environment.environment, planning.inventory(), hardware_mapping.mapping)
    subnets = pl.DataFrame(
        [{"name": n, "old": o, "new": w} for n, o, w in network.subnets],
        schema=dict.fromkeys(("name", "old", "new"), pl.String),
    )
    return Output(
        network,
        metadata={
            **adaptations_metadata(source_environment.backup_set_id, network.adaptations),
            "dagster/row_count": network.addresses.height,
            "subnets": table_preview(subnets),
            "addresses": table_preview(network.addresses),
            "nics": len(network.nics),
            "routes": len(network.routes),
            "dns_records": len(network.records),
        },
    )


@asset(group_name=GROUP)
def storage_redirection(
    planning: PlanningResource, source_environment: SetEnvironment
) -> Output[StoragePlan]:
    """Every volume and Director state path redirected under a storage root of the inventory, within
    each pool's capacity and never onto a slower storage class."""
    storage = redirect_storage(source_environment.environment, planning.inventory(), planning.mode())
    usage = pl.DataFrame(
        [{"pool": p, "used_gib": round(u, 3), "capacity_gib": c} for p, u, c in storage.usage],
        schema={"pool": pl.String, "used_gib": pl.Float64, "capacity_gib": pl.Int64},
    )
    return Output(
        storage,
        metadata={
            **adaptations_metadata(source_environment.backup_set_id, storage.adaptations),
            "dagster/row_count": storage.table.height,
            "pool_usage": table_preview(usage),
            "paths": table_preview(storage.table),
        },
    )


ADAPTATION_GROUP_ASSETS = [
    source_environment,
    hardware_mapping,
    resource_scaling,
    network_adaptation,
    storage_redirection,
]
