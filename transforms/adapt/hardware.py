"""Hardware mapping: old nodes onto the inventory's nodes, and every VM onto a Director within capacity.

Pure functions, no I/O. The steps:

1. `map_nodes` (`nodes.py`): every old Director host gets its own new node, busiest Director first — like for
   like (the smallest free node at least as large as the old one) or largest first — then old
   compute and storage nodes get what is left (compute by cores, storage by disk); old nodes with
   nothing left are retired, new nodes nobody needs stay spare.
2. `place_environment`: VM requests are scaled (`scaling.py`) to fit the Directors' total capacity,
   then placed. Basic mode keeps each VM on its old Director where it fits and moves only the rest
   (to the Director with the most room). Advanced mode re-places everything: Orchestrators and
   critical applications are spread across Directors, the rest packed best-fit; when that does not
   pack it falls back to the original shape. If VMs still do not fit, the totals they are scaled to
   are tightened step by step (PRESSURE_STEPS). Like-for-like mapping is used unless it would make
   applications shrink and largest-first would not.
   A Director's capacity is (cores − its reservation) × cpu_overcommit vCPUs, memory − its
   reservation MiB, and its node's disks for VM disks.
3. When the environment cannot fit, AdaptationError says what does not fit and by how much.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from omni_recovery.adapt.inventory import Inventory
from transforms.adapt.nodes import DirectorSlot, HardwareMapping, map_nodes
from transforms.adapt.scaling import VmDemand, scale_demands, scaling_adaptations, vm_demands
from transforms.adapt.vocabulary import ADAPTATION_MODES, Adaptation, AdaptationError, AdaptationPolicy
from transforms.documents import Environment

PRESSURE_STEPS = (1.0, 0.97, 0.94, 0.9, 0.86, 0.82, 0.78, 0.74, 0.7)
SPREAD_ROLES = ("orchestrator",)

PLACEMENT_SCHEMA = {
    "vm_id": pl.String,
    "name": pl.String,
    "role": pl.String,
    "component": pl.String,
    "priority": pl.String,
    "old_director": pl.String,
    "director": pl.String,
    "node": pl.String,
    "old_cpu": pl.Int64,
    "cpu": pl.Int64,
    "old_memory_mib": pl.Int64,
    "memory_mib": pl.Int64,
    "disk_gib": pl.Int64,
}


@dataclass(frozen=True)
class HardwarePlan:
    mapping: HardwareMapping
    placements: pl.DataFrame  # PLACEMENT_SCHEMA, one row per VM
    adaptations: tuple[Adaptation, ...]


# -- placement ---------------------------------------------------------------------------------------


class _NoFit(Exception):
    def __init__(self, demand: VmDemand, free: dict[str, list[float]]) -> None:
        super().__init__(demand.vm_id)
        self.demand = demand
        self.free = free


def place_vms(
    demands: list[VmDemand], slots: tuple[DirectorSlot, ...], mode: str, policy: AdaptationPolicy
) -> dict[str, str]:
    """vm_id → Director for every demand, within every Director's capacity; raises _NoFit."""
    caps = {
        s.director: [s.vcpu_capacity(policy), float(s.memory_capacity()), float(s.disk_gib)] for s in slots
    }
    free = {d: list(c) for d, c in caps.items()}
    result: dict[str, str] = {}
    count: dict[tuple[str, str], int] = {}

    def fits(d: VmDemand, director: str) -> bool:
        f = free[director]
        return d.cpu <= f[0] + 1e-9 and d.memory_mib <= f[1] and d.disk_gib <= f[2]

    def room(director: str, d: VmDemand | None = None) -> float:
        f, c = free[director], caps[director]
        used = (d.cpu, d.memory_mib, d.disk_gib) if d else (0, 0, 0)
        return min((f[i] - used[i]) / c[i] if c[i] else 0.0 for i in range(3))

    def put(d: VmDemand, director: str) -> None:
        f = free[director]
        f[0] -= d.cpu
        f[1] -= d.memory_mib
        f[2] -= d.disk_gib
        result[d.vm_id] = director
        group = _group(d)
        count[(group, director)] = count.get((group, director), 0) + 1

    def size(d: VmDemand) -> float:
        total = [sum(c[i] for c in caps.values()) or 1.0 for i in range(3)]
        return max(d.cpu / total[0], d.memory_mib / total[1], d.disk_gib / total[2])

    order = sorted(demands, key=lambda d: (-size(d), d.vm_id))
    if mode == "basic":
        leftovers = []
        for d in demands:
            if d.director in free and fits(d, d.director):
                put(d, d.director)
            else:
                leftovers.append(d)
        for d in sorted(leftovers, key=lambda d: (-size(d), d.vm_id)):
            options = [s for s in sorted(free) if fits(d, s)]
            if not options:
                raise _NoFit(d, free)
            put(d, max(options, key=lambda s: (room(s, d), s)))
        return result
    spread = [d for d in order if _group(d) != "pack"]
    for d in spread:
        options = [s for s in sorted(free) if fits(d, s)]
        if not options:
            raise _NoFit(d, free)
        put(d, min(options, key=lambda s: (count.get((_group(d), s), 0), s != d.director, -room(s, d), s)))
    for d in (d for d in order if _group(d) == "pack"):
        options = [s for s in sorted(free) if fits(d, s)]
        if not options:
            raise _NoFit(d, free)
        put(d, min(options, key=lambda s: (round(room(s, d), 3), s != d.director, s)))
    return result


def _group(d: VmDemand) -> str:
    """Spread group of a VM in advanced mode: Orchestrators, critical applications; the rest is packed."""
    if d.role in SPREAD_ROLES:
        return d.role
    if d.role == "app" and d.priority == "critical":
        return "critical"
    return "pack"


def place_environment(
    env: Environment, inventory: Inventory, mode: str = "basic", policy: AdaptationPolicy | None = None
) -> HardwarePlan:
    """Map nodes, scale and place every VM; raise AdaptationError saying what does not fit and by how much."""
    if mode not in ADAPTATION_MODES:
        raise AdaptationError(f"unknown adaptation mode {mode!r} (known: {', '.join(ADAPTATION_MODES)})")
    policy = policy or AdaptationPolicy()
    like = _try_place(env, inventory, mode, policy, "like")
    if isinstance(like, HardwarePlan) and not any(
        a.kind == "scaling" and "smaller" in a.reason for a in like.adaptations
    ):
        return like
    largest = _try_place(env, inventory, mode, policy, "largest")
    if isinstance(largest, HardwarePlan):
        return largest
    if isinstance(like, HardwarePlan):
        return like
    raise largest


def _try_place(
    env: Environment, inventory: Inventory, mode: str, policy: AdaptationPolicy, strategy: str
) -> HardwarePlan | AdaptationError:
    try:
        return _place_on(env, map_nodes(env, inventory, policy, strategy), mode, policy)
    except AdaptationError as exc:
        return exc


def _place_on(
    env: Environment, mapping: HardwareMapping, mode: str, policy: AdaptationPolicy
) -> HardwarePlan:
    """Scale and place every VM onto the Directors of `mapping`."""
    demands = vm_demands(env)
    cpu_total = sum(s.vcpu_capacity(policy) for s in mapping.slots)
    mem_total = float(sum(s.memory_capacity() for s in mapping.slots))
    _check_disks(demands, mapping.slots)
    growth = _growth(env, mapping, policy)
    last: _NoFit | None = None
    placers = (mode, "basic") if mode == "advanced" else (mode,)
    for pressure in PRESSURE_STEPS:
        cpu, mem = cpu_total * pressure, mem_total * pressure
        scaled = scale_demands(demands, cpu, mem, mode, policy, growth)
        if scaled is None:
            if pressure == PRESSURE_STEPS[0]:
                raise AdaptationError(_shortfall(env, demands, mapping, policy))
            break
        variants = [scaled]
        plain = scale_demands(demands, cpu, mem, "basic", policy) if mode == "advanced" else None
        if plain is not None and plain != scaled:
            variants.append(plain)  # a scaled-up attempt that does not pack is retried at the original size
        for variant in variants:
            for placer in placers:  # advanced falls back to the original shape before anything shrinks
                try:
                    placed = place_vms(variant, mapping.slots, placer, policy)
                except _NoFit as exc:
                    last = exc
                    continue
                return _plan(env, mapping, demands, variant, placed, placer)
    assert last is not None
    raise AdaptationError(_no_fit_message(last, mapping, policy))


def _growth(env: Environment, mapping: HardwareMapping, policy: AdaptationPolicy) -> tuple[float, float]:
    """How much more CPU and memory the new Director nodes offer than the old ones (1.0 when unknown)."""
    old = {n.name: n for n in env.nodes}
    old_cpu = old_mem = 0
    for director in env.directors:
        node = old.get(director.node)
        if node is None:
            return 1.0, 1.0
        old_cpu += max(0, node.cpu_cores - director.reserved_cpu)
        old_mem += max(0, node.memory_mib - director.reserved_memory_mib)
    new_cpu = sum(s.vcpu_capacity(policy) for s in mapping.slots) / policy.cpu_overcommit
    new_mem = sum(s.memory_capacity() for s in mapping.slots)
    return (new_cpu / old_cpu if old_cpu else 1.0, new_mem / old_mem if old_mem else 1.0)


def _check_disks(demands: list[VmDemand], slots: tuple[DirectorSlot, ...]) -> None:
    need = sum(d.disk_gib for d in demands)
    have = sum(s.disk_gib for s in slots)
    if need > have:
        raise AdaptationError(
            f"the VMs need {need} GiB of VM disk; the {len(slots)} Director nodes have {have} GiB "
            f"(short by {need - have} GiB)"
        )


def _shortfall(
    env: Environment, demands: list[VmDemand], mapping: HardwareMapping, policy: AdaptationPolicy
) -> str:
    """What does not fit, and by how much, with every application already at its lower bound."""
    cpu = sum(d.cpu if not d.scalable else math.ceil(d.cpu * policy.scale_min) for d in demands)
    mem = sum(d.memory_mib if not d.scalable else math.ceil(d.memory_mib * policy.scale_min) for d in demands)
    reserved_cpu = sum(s.reserved_cpu for s in mapping.slots)
    reserved_mem = sum(s.reserved_memory_mib for s in mapping.slots)
    need_cores = reserved_cpu + math.ceil(cpu / policy.cpu_overcommit)
    need_mem = reserved_mem + mem
    have_cores = sum(s.cpu_cores for s in mapping.slots)
    have_mem = sum(s.memory_mib for s in mapping.slots)
    parts = []
    if need_cores > have_cores:
        parts.append(f"{have_cores} cores (short by {need_cores - have_cores})")
    else:
        parts.append(f"{have_cores} cores (enough)")
    if need_mem > have_mem:
        parts.append(f"{have_mem} MiB (short by {need_mem - have_mem} MiB)")
    else:
        parts.append(f"{have_mem} MiB (enough)")
    return (
        f"the environment does not fit the inventory: its {len(mapping.slots)} Directors and "
        f"{len(demands)} VMs "
        f"need {need_cores} cores ({reserved_cpu} reserved for the Directors + {cpu} VM vCPUs at "
        f"{policy.cpu_overcommit:g} per core) and {need_mem} MiB ({reserved_mem} reserved + {mem} for VMs), "
        f"even with every application scaled down to ×{policy.scale_min:g}; the Director nodes "
        f"({', '.join(s.node for s in mapping.slots)}) have {' and '.join(parts)}"
    )


def _no_fit_message(exc: _NoFit, mapping: HardwareMapping, policy: AdaptationPolicy) -> str:
    d = exc.demand
    best = max(
        exc.free.items(),
        key=lambda kv: (min(kv[1][0] / max(d.cpu, 1), kv[1][1] / max(d.memory_mib, 1)), kv[0]),
    )
    director, (cpu, mem, disk) = best
    short = []
    if d.cpu > cpu:
        short.append(f"{d.cpu - cpu:g} vCPU")
    if d.memory_mib > mem:
        short.append(f"{d.memory_mib - mem:g} MiB")
    if d.disk_gib > disk:
        short.append(f"{d.disk_gib - disk:g} GiB disk")
    return (
        f"VM {d.name} ({d.owner}: {d.cpu} vCPU, {d.memory_mib} MiB, {d.disk_gib} GiB disk) "
        f"fits on no Director: the most room left is on {director} "
        f"(node {mapping.slot(director).node}: {cpu:g} vCPU, {mem:g} MiB, "
        f"{disk:g} GiB disk; short by {', '.join(short) or 'nothing'}) after placing the larger VMs"
    )


def _plan(
    env: Environment,
    mapping: HardwareMapping,
    before: list[VmDemand],
    after: list[VmDemand],
    placed: dict[str, str],
    mode: str,
) -> HardwarePlan:
    old = {d.vm_id: d for d in before}
    rows = []
    adaptations = list(mapping.adaptations)
    for d in after:
        director = placed[d.vm_id]
        node = mapping.slot(director).node
        rows.append(
            {
                "vm_id": d.vm_id,
                "name": d.name,
                "role": d.role,
                "component": d.owner,
                "priority": d.priority,
                "old_director": d.director,
                "director": director,
                "node": node,
                "old_cpu": old[d.vm_id].cpu,
                "cpu": d.cpu,
                "old_memory_mib": old[d.vm_id].memory_mib,
                "memory_mib": d.memory_mib,
                "disk_gib": d.disk_gib,
            }
        )
        if director != d.director:
            old_node = next(
                (mapping.new_node_of(x.node) for x in env.directors if x.director_id == d.director), None
            )
            adaptations.append(
                Adaptation(
                    "placement",
                    f"VM {d.name} ({d.owner})",
                    f"Director {d.director}" + (f" (now on {old_node})" if old_node else ""),
                    f"Director {director} on {node}",
                    _placement_reason(d, mode),
                )
            )
    adaptations.extend(scaling_adaptations(before, after))
    return HardwarePlan(mapping, pl.DataFrame(rows, schema=PLACEMENT_SCHEMA), tuple(adaptations))


def _placement_reason(d: VmDemand, mode: str) -> str:
    if mode == "basic":
        return "does not fit its old Director on the new node; moved to the Director with the most room"
    group = _group(d)
    if group == "orchestrator":
        return "Orchestrators spread across Directors"
    if group == "critical":
        return "critical applications spread across Directors"
    return "packed onto the Director where it fits best (advanced mode)"
