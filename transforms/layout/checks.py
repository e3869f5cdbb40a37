"""Checks that a plan fits the environment and the inventory before any file is laid out."""

from __future__ import annotations

from omni_recovery.adapt.inventory import Inventory
from omni_recovery.errors import RecoveryError
from omni_recovery.urls import is_under, split_url
from transforms.adapt.changes import LayoutError
from transforms.adapt.storage_paths import safe_join
from transforms.documents import Environment
from transforms.layout.files import pool_root
from transforms.plan import Plan


def reference_problems(env: Environment, plan: Plan, inventory: Inventory) -> list[str]:
    """Every place where the plan names what the environment or the inventory lacks, or leaves part of
    the environment without a node, a placement, a path or a new subnet."""
    director_node = {n.director: n.name for n in plan.nodes if n.director}
    placements = {p.vm_id: p for p in plan.placements}
    pools = {p.name: p for p in plan.pools}
    paths = {p.subject: p for p in plan.paths}
    subnets = {s.name for s in plan.subnets}
    problems: list[str] = []
    add = problems.append
    inv_nodes = {n.name for n in inventory.nodes}
    inv_pools = {p.name: p for p in inventory.storage}
    directors = {d.director_id for d in env.directors}
    old_nodes = {n.name for n in env.nodes}
    owners = {vm.vm_id: vm.owner for vm in env.vms}
    for n in plan.nodes:
        if n.name not in inv_nodes:
            add(f"plan node {n.name}: not in the inventory")
        if n.director and n.director not in directors:
            add(f"plan node {n.name}: Director {n.director} is not in the environment")
        if n.old_node and n.old_node not in old_nodes:
            add(f"plan node {n.name}: old node {n.old_node} is not in the environment")
    for d in sorted(directors - set(director_node)):
        add(f"Director {d}: the plan maps it onto no node")
    for p in plan.placements:
        if p.vm_id not in owners:
            add(f"placement of VM {p.name} ({p.vm_id}): no such VM in the environment")
        elif owners[p.vm_id] != p.component:
            add(f"placement of VM {p.name}: it runs {owners[p.vm_id]}, not {p.component}")
        if p.director not in director_node:
            add(f"placement of VM {p.name}: Director {p.director} has no node in the plan")
    for vm in env.vms:
        if vm.vm_id not in placements:
            add(f"VM {vm.name} ({vm.owner}): the plan places it nowhere")
    for pool in plan.pools:
        real = inv_pools.get(pool.name)
        if real is None:
            add(f"plan storage pool {pool.name}: not in the inventory")
        elif real.root != pool.root:
            add(f"plan storage pool {pool.name}: root {pool.root} is not the inventory's {real.root}")
    subjects = {v.component_id for v in env.volumes} | {
        f"director:{d.director_id}/{name}" for d in env.directors for name, _ in d.storage_paths
    }
    for path in plan.paths:
        if path.subject not in subjects:
            add(f"plan path {path.subject}: not a volume or Director path of the environment")
        in_plan = pools.get(path.pool)
        if in_plan is None:
            add(f"plan path {path.subject}: unknown storage pool {path.pool}")
        elif not is_under(in_plan.root, path.new_path):
            add(f"plan path {path.subject}: {path.new_path} lies outside storage root {in_plan.root}")
    for subject in sorted(subjects - set(paths)):
        add(f"{subject}: the plan gives it no new path")
    env_subnets = {s.name for s in env.network.subnets}
    for s in plan.subnets:
        if s.name not in env_subnets:
            add(f"plan subnet {s.name}: not a subnet of the environment")
    for name in sorted(env_subnets - set(subnets)):
        add(f"subnet {name}: the plan maps it onto no new subnet")
    return problems


def volume_roots(env: Environment, plan: Plan) -> dict[str, tuple[str, str]]:
    """Volume id → (pool root name, relpath of its files/ folder under the pool); LayoutError listing
    every volume whose planned path cannot hold it."""
    pools = {p.name: p for p in plan.pools}
    paths = {p.subject: p for p in plan.paths}
    roots: dict[str, tuple[str, str]] = {}
    problems: list[str] = []
    for volume in env.volumes:
        entry = paths[volume.component_id]
        pool = pools[entry.pool]
        _, root_path = split_url(pool.root)
        _, path = split_url(entry.new_path)
        rel = path[len(root_path.rstrip("/")) + 1 :]
        try:
            safe_join(pool.root, *rel.split("/"), "files")
        except RecoveryError as exc:
            problems.append(f"{volume.component_id}: {exc}")
            continue
        roots[volume.component_id] = (pool_root(pool.name), f"{rel}/files")
    if problems:
        raise LayoutError(problems)
    return roots
