"""Generating a plan: the four adaptations of an environment onto an inventory, then its steps.

`generate_plan(environment, inventory, mode, backup_set_id)` runs hardware mapping with placement and
scaling, network and storage paths (`adapt`), turns their results into the plan's entries and asks
`steps.build_steps` for the DAG. An inventory too small raises AdaptationError saying by how much.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from omni_recovery.adapt.inventory import Inventory
from transforms.adapt.hardware import HardwarePlan, place_environment
from transforms.adapt.network import NetworkPlan, adapt_network
from transforms.adapt.storage_paths import StoragePlan, redirect_storage
from transforms.adapt.vocabulary import Adaptation, AdaptationError, AdaptationPolicy
from transforms.documents import Environment
from transforms.plan.model import (
    AddressEntry,
    NodeEntry,
    PathEntry,
    PlacementEntry,
    Plan,
    PoolEntry,
    SubnetEntry,
)
from transforms.plan.steps import build_steps
from transforms.plan.validate import validate_plan


@dataclass(frozen=True)
class Adapted:
    """The four adaptations of one environment onto one inventory."""

    hardware: HardwarePlan
    network: NetworkPlan
    storage: StoragePlan

    @property
    def adaptations(self) -> tuple[Adaptation, ...]:
        return self.hardware.adaptations + self.network.adaptations + self.storage.adaptations


def adapt(
    environment: Environment,
    inventory: Inventory,
    mode: str = "basic",
    policy: AdaptationPolicy | None = None,
) -> Adapted:
    """Hardware mapping with placement and scaling, then network, then storage paths."""
    policy = policy or AdaptationPolicy()
    hardware = place_environment(environment, inventory, mode, policy)
    network = adapt_network(environment, inventory, hardware.mapping)
    storage = redirect_storage(environment, inventory, mode)
    return Adapted(hardware, network, storage)


def generate_plan(
    environment: Environment,
    inventory: Inventory,
    mode: str = "basic",
    backup_set_id: str = "",
    policy: AdaptationPolicy | None = None,
    warnings: tuple[Adaptation, ...] = (),
) -> Plan:
    """The recovery plan of `environment` onto `inventory`; raises AdaptationError when it cannot fit.
    `warnings`: what the caller found in the set that the plan must say (listed after the adaptations)."""
    policy = policy or AdaptationPolicy()
    adapted = adapt(environment, inventory, mode, policy)
    plan = Plan(
        backup_set_id=backup_set_id,
        environment=environment.name,
        adaptation_mode=mode,
        policy=policy,
        nodes=_node_entries(environment, inventory, adapted.hardware),
        placements=_placement_entries(adapted.hardware),
        pools=tuple(PoolEntry(p.name, p.storage_class, p.root, p.capacity_gib) for p in inventory.storage),
        paths=tuple(
            PathEntry(p.subject, p.pool, p.pool_class, p.old_path, p.new_path, p.size_gib)
            for p in adapted.storage.paths
        ),
        subnets=tuple(SubnetEntry(name, old, new) for name, old, new in adapted.network.subnets),
        addresses=tuple(
            AddressEntry(str(r["subnet"]), str(r["owner"]), str(r["old"]), str(r["new"]))
            for r in adapted.network.addresses.iter_rows(named=True)
        ),
        steps=(),
        adaptations=adapted.adaptations + warnings,
    )
    plan = replace(plan, steps=build_steps(environment, plan, adapted))
    problems = validate_plan(plan, None, inventory, environment)
    if problems:
        raise AdaptationError("the generated plan is not valid (a bug): " + "; ".join(m for _, m in problems))
    return plan


def _node_entries(env: Environment, inventory: Inventory, hardware: HardwarePlan) -> tuple[NodeEntry, ...]:
    reserved = {d.director_id: (d.reserved_cpu, d.reserved_memory_mib) for d in env.directors}
    entries = []
    for m in hardware.mapping.nodes:
        if m.new_node is None:
            continue
        node = inventory.node(m.new_node)
        cpu, mem = reserved.get(m.director or "", (0, 0))
        entries.append(
            NodeEntry(
                node.name,
                m.old_node,
                m.role,
                m.director,
                node.root,
                node.cpu_cores,
                node.memory_mib,
                node.disk_gib,
                cpu,
                mem,
            )
        )
    return tuple(sorted(entries, key=lambda e: (e.director is None, e.director or "", e.name)))


def _placement_entries(hardware: HardwarePlan) -> tuple[PlacementEntry, ...]:
    order = {"orchestrator": 0, "service": 1, "app": 2}
    rows = sorted(
        hardware.placements.iter_rows(named=True),
        key=lambda r: (r["director"], order.get(r["role"], 3), r["name"]),
    )
    return tuple(
        PlacementEntry(
            r["vm_id"],
            r["name"],
            r["component"],
            r["director"],
            r["node"],
            r["cpu"],
            r["memory_mib"],
            r["disk_gib"],
            r["old_director"],
            r["old_cpu"],
            r["old_memory_mib"],
        )
        for r in rows
    )
