"""Validating a plan (usually an edited one) against the environment and the inventory.

`validate_plan` checks steps (unknown phases, cycles, steps out of phase order, gate steps that name
another phase or a component or node), components, capacity of nodes and pools, storage paths
(outside a root, inside another's path) and addresses (outside their subnet, used twice); each
problem names the YAML line at fault. Plans with gate steps and plans without (each step depending
on every last step of the phase before) are both valid.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from graphlib import CycleError, TopologicalSorter

from omni_recovery.adapt.inventory import Inventory
from omni_recovery.backupset.index_db import COMPONENT_KINDS
from omni_recovery.urls import is_under, overlapping
from transforms.adapt.vocabulary import ADAPTATION_MODES
from transforms.documents import Environment
from transforms.plan.model import _COMPONENT, GATE, ON_FAILURE, PHASE_INDEX, PHASES, Plan, Step


def validate_plan(
    plan: Plan,
    known_components: Collection[str] | None = None,
    inventory: Inventory | None = None,
    environment: Environment | None = None,
) -> list[tuple[int, str]]:
    """Every problem of `plan` as (line, message): the checks `plan_from_yaml` makes on an edited plan.

    With `environment` (the backed-up one), also: its components are the known ones, every VM is
    placed, every volume has a path, and every hard dependency runs before its dependent."""
    problems: list[tuple[int, str]] = []
    if environment is not None:
        known_components = environment.component_ids()
        problems += _check_against(plan, environment)
    if plan.adaptation_mode not in ADAPTATION_MODES:
        problems.append(
            (0, f"adaptation_mode {plan.adaptation_mode!r} is not one of {', '.join(ADAPTATION_MODES)}")
        )
    problems += _check_components(plan, known_components)
    problems += _check_steps(plan.steps)
    problems += _check_capacity(plan, inventory)
    problems += _check_storage(plan)
    problems += _check_addresses(plan)
    return problems


def _check_against(plan: Plan, env: Environment) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    placed = {p.vm_id for p in plan.placements}
    for vm in env.vms:
        if vm.vm_id not in placed:
            problems.append((0, f"VM {vm.name} ({vm.owner}) is placed nowhere: every VM needs a placement"))
    with_path = {p.subject for p in plan.paths}
    for volume in env.volumes:
        if volume.component_id not in with_path:
            problems.append((0, f"{volume.component_id} has no path: every volume needs one"))
    steps = {s.id: s for s in plan.steps}
    ancestry = _Ancestry(steps)
    by_component = {s.component: s.id for s in plan.steps if s.component}
    for dep in env.dependencies:
        step, needed = by_component.get(dep.component_id), by_component.get(dep.depends_on_id)
        if dep.strength == "hard" and step and needed and not ancestry.runs_after(step, needed):
            problems.append(
                (
                    steps[step].line,
                    f"step {step} must run after {needed} ({dep.component_id} hard-depends on it)",
                )
            )
    return problems


class _Ancestry:
    """Whether a step runs after another: each step's ancestors as a bit set (an int over the
    steps' positions), built once in dependency order. Walking a step's ancestors for each hard
    dependency instead grew with the dependencies times the plan's edges: minutes at 2,000
    applications."""

    def __init__(self, steps: dict[str, Step]) -> None:
        self.steps = steps
        self.position = {step_id: i for i, step_id in enumerate(steps)}
        graph = {s.id: [d for d in s.depends_on if d in steps] for s in steps.values()}
        self.bits: dict[str, int] | None = {}
        try:
            order = list(TopologicalSorter(graph).static_order())
        except CycleError:  # _check_steps reports it; each question is then answered by a walk
            self.bits = None
            return
        for step_id in order:
            bits = 0
            for dependency in graph[step_id]:
                bits |= self.bits[dependency] | 1 << self.position[dependency]
            self.bits[step_id] = bits

    def runs_after(self, step_id: str, needed: str) -> bool:
        if self.bits is None:
            return needed in _ancestors(self.steps, step_id)
        return bool(self.bits[step_id] >> self.position[needed] & 1)


def _ancestors(steps: dict[str, Step], step_id: str) -> set[str]:
    seen: set[str] = set()
    stack = list(steps[step_id].depends_on)
    while stack:
        current = stack.pop()
        if current not in seen and current in steps:
            seen.add(current)
            stack.extend(steps[current].depends_on)
    return seen


def _check_components(plan: Plan, known: Collection[str] | None) -> list[tuple[int, str]]:
    problems = []
    refs = [(s.line, f"step {s.id}", s.component) for s in plan.steps if s.component]
    refs += [(p.line, f"placement of VM {p.name}", p.component) for p in plan.placements]
    for line, what, component in refs:
        assert component is not None
        kind = component.partition(":")[0]
        if not _COMPONENT.match(component) or kind not in COMPONENT_KINDS:
            problems.append((line, f"{what}: {component!r} is not a component id (kind:name)"))
        elif known is not None and component not in known:
            problems.append((line, f"{what}: unknown component {component} (not in the backup set)"))
    return problems


def _check_steps(steps: tuple[Step, ...]) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    by_id: dict[str, Step] = {}
    for s in steps:
        if s.id in by_id:
            problems.append((s.line, f"step {s.id} is defined twice (first at line {by_id[s.id].line})"))
        by_id.setdefault(s.id, s)
        if s.phase not in PHASE_INDEX:
            problems.append((s.line, f"step {s.id}: unknown phase {s.phase!r} (phases: {', '.join(PHASES)})"))
        if s.on_failure not in ON_FAILURE:
            problems.append(
                (s.line, f"step {s.id}: on_failure {s.on_failure!r} is not one of {', '.join(ON_FAILURE)}")
            )
        if s.timeout_s <= 0 or s.retries < 0:
            problems.append((s.line, f"step {s.id}: timeout_s must be positive and retries not negative"))
        if s.is_gate:
            problems += _check_gate(s)
    for s in steps:
        for dep in s.depends_on:
            other = by_id.get(dep)
            if other is None:
                problems.append((s.line, f"step {s.id} depends on unknown step {dep!r}"))
            elif dep == s.id:
                problems.append((s.line, f"step {s.id} depends on itself"))
            elif PHASE_INDEX.get(other.phase, 0) > PHASE_INDEX.get(s.phase, 0):
                problems.append(
                    (
                        s.line,
                        f"step {s.id} (phase {s.phase}) depends on {dep} of the later phase {other.phase}",
                    )
                )
    cycle = find_cycle({s.id: [d for d in s.depends_on if d in by_id and d != s.id] for s in by_id.values()})
    if cycle:
        problems.append((by_id[cycle[0]].line, f"dependency cycle: {' -> '.join(cycle)}"))
    return problems


def _check_gate(step: Step) -> list[tuple[int, str]]:
    """A gate step opens the phase it names and belongs to no component and no node."""
    problems = []
    if step.id != f"{GATE}/{step.phase}":
        named = f"{GATE}/{step.phase}"
        problems.append((step.line, f"step {step.id}: a gate step is named {GATE}/<its phase> ({named})"))
    if step.component or step.node:
        problems.append((step.line, f"step {step.id}: a gate step restores nothing: no component, no node"))
    return problems


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle of `edges` (node → nodes it depends on) as [a, b, …, a], each depending on the next."""
    try:
        TopologicalSorter(edges).prepare()
    except CycleError as exc:
        return list(reversed(exc.args[1]))
    return None


def _check_capacity(plan: Plan, inventory: Inventory | None) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    nodes = {n.name: n for n in plan.nodes}
    director_node = {n.director: n.name for n in plan.nodes if n.director}
    if inventory is not None:
        inv = {n.name: n for n in inventory.nodes}
        for n in plan.nodes:
            real = inv.get(n.name)
            if real is None:
                problems.append((n.line, f"node {n.name} is not in the inventory"))
                continue
            for attr in ("cpu_cores", "memory_mib", "disk_gib"):
                if getattr(n, attr) != getattr(real, attr):
                    problems.append(
                        (
                            n.line,
                            f"node {n.name}: the plan says {attr} {getattr(n, attr)}, the inventory "
                            f"says {getattr(real, attr)}",
                        )
                    )
    used: dict[str, list[float]] = {}
    seen: dict[str, int] = {}
    overcommit = plan.policy.cpu_overcommit
    for p in plan.placements:
        if p.vm_id in seen:
            problems.append((p.line, f"VM {p.vm_id} is placed twice (first at line {seen[p.vm_id]})"))
        seen.setdefault(p.vm_id, p.line)
        node = nodes.get(p.node)
        if node is None:
            problems.append((p.line, f"placement of VM {p.name}: unknown node {p.node!r}"))
            continue
        if director_node.get(p.director) != p.node:
            problems.append(
                (
                    p.line,
                    f"placement of VM {p.name}: Director {p.director} runs on "
                    f"{director_node.get(p.director, 'no node of this plan')}, not on {p.node}",
                )
            )
        u = used.setdefault(p.node, [0.0, 0.0, 0.0])
        u[0] += p.cpu
        u[1] += p.memory_mib
        u[2] += p.disk_gib
        caps = (
            (node.cpu_cores - node.reserved_cpu) * overcommit,
            node.memory_mib - node.reserved_memory_mib,
            node.disk_gib,
        )
        units = ("vCPU", "MiB memory", "GiB disk")
        for i in range(3):
            if u[i] > caps[i] + 1e-9 and u[i] - (p.cpu, p.memory_mib, p.disk_gib)[i] <= caps[i] + 1e-9:
                problems.append(
                    (
                        p.line,
                        f"placement of VM {p.name} exceeds node {p.node}: {u[i]:g} {units[i]} placed, "
                        f"it holds {caps[i]:g} (over by {u[i] - caps[i]:g})",
                    )
                )
    return problems


def _check_storage(plan: Plan) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    pools = {p.name: p for p in plan.pools}
    used: dict[str, float] = {}
    for path in plan.paths:
        pool = pools.get(path.pool)
        if pool is None:
            problems.append((path.line, f"{path.subject}: unknown storage pool {path.pool!r}"))
            continue
        if not is_under(pool.root, path.new_path):
            problems.append(
                (path.line, f"{path.subject}: {path.new_path} lies outside storage root {pool.root}")
            )
        before = used.get(path.pool, 0.0)
        used[path.pool] = before + path.size_gib
        if used[path.pool] > pool.capacity_gib + 1e-9 >= before:
            problems.append(
                (
                    path.line,
                    f"{path.subject}: storage pool {pool.name} holds {pool.capacity_gib} GiB; "
                    f"{used[path.pool]:g} GiB planned (over by {used[path.pool] - pool.capacity_gib:g})",
                )
            )
    return problems + _shared_paths(plan)


def _shared_paths(plan: Plan) -> list[tuple[int, str]]:
    """Roots or paths that are another's, or lie inside another's: what goes there would be mixed."""
    roots = [(n.root, (n.line, f"node {n.name}", n.root)) for n in plan.nodes]
    roots += [(p.root, (p.line, f"storage pool {p.name}", p.root)) for p in plan.pools]
    paths = [(p.new_path, (p.line, p.subject, p.new_path)) for p in plan.paths]
    return [
        (
            line,
            f"{name}: {url} {'is also' if same else 'lies inside'} the {kind} of {outer}; each needs its own",
        )
        for items, kind in ((roots, "root"), (paths, "path"))
        for (line, name, url), (_, outer, _), same in overlapping(items)
    ]


def _check_addresses(plan: Plan) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    nets: dict[str, ipaddress.IPv4Network] = {}
    for s in plan.subnets:
        try:
            nets[s.name] = ipaddress.IPv4Network(s.new)
        except ValueError:
            problems.append((s.line, f"subnet {s.name}: {s.new!r} is not an IPv4 CIDR"))
    seen: dict[str, int] = {}
    for a in plan.addresses:
        try:
            ip = ipaddress.IPv4Address(a.new)
        except ValueError:
            problems.append((a.line, f"{a.owner}: {a.new!r} is not an IPv4 address"))
            continue
        net = nets.get(a.subnet)
        if net is None:
            problems.append((a.line, f"{a.owner}: unknown subnet {a.subnet!r}"))
        elif ip not in net:
            problems.append((a.line, f"{a.owner}: {a.new} lies outside subnet {a.subnet} ({net})"))
        if a.new in seen:
            problems.append((a.line, f"{a.owner}: address {a.new} is already used (line {seen[a.new]})"))
        seen.setdefault(a.new, a.line)
    return problems
