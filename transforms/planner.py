"""The recovery plan: a DAG of steps in phases, every adaptation old → new, as YAML a person can edit.

Entry point: `generate_plan(environment, inventory, mode, backup_set_id) -> Plan` runs the four
adaptations (hardware mapping and placement with resource scaling, network, storage paths) and builds
the steps. `plan_to_yaml(plan)` writes it (commented header, stable order); `plan_from_yaml(text)`
reads an edited plan back and re-validates it: unknown fields, phases or steps, dependency cycles,
steps out of phase order, unknown components, placements beyond a node's capacity, storage beyond a
pool's capacity, outside its root or inside another's path, addresses outside their subnet or used
twice — each problem naming the YAML line at fault (PlanError lists them all).

Phases, in order: directors, ring, orchestrators, cluster, storage, volumes, core-services,
applications-critical, applications-standard, applications-low, verification, report,
post-recovery-backup. Every step depends on its hard dependencies and on the last steps of the
previous phase, so phases run in order and a hard dependency always runs before its dependent.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, field, replace
from graphlib import CycleError, TopologicalSorter
from typing import Any

import polars as pl
import yaml

from omni_recovery.backupset.index_db import COMPONENT_KINDS
from omni_recovery.errors import RecoveryError
from omni_recovery.inventory import Inventory, LineList, LineMap, load_yaml_with_lines, yaml_error_line
from omni_recovery.urls import is_under, overlapping
from transforms.environment_model import (
    ADAPTATION_MODES,
    Adaptation,
    AdaptationError,
    AdaptationPolicy,
    Environment,
)
from transforms.hardware import HardwarePlan, place_environment
from transforms.network import NetworkPlan, adapt_network, component_addresses
from transforms.storage_paths import StoragePlan, redirect_storage

PLAN_FORMAT = "omni-recovery-plan/1"
PHASES = (
    "directors",
    "ring",
    "orchestrators",
    "cluster",
    "storage",
    "volumes",
    "core-services",
    "applications-critical",
    "applications-standard",
    "applications-low",
    "verification",
    "report",
    "post-recovery-backup",
)
PHASE_INDEX = {p: i for i, p in enumerate(PHASES)}
ON_FAILURE = ("stop", "skip-dependents", "continue")
_COMPONENT = re.compile(r"^[a-z]+:[^\s]+$")


class PlanError(RecoveryError):
    """A plan (usually an edited one) is not valid; `problems` lists (line, message), line 0 when unknown."""

    def __init__(self, problems: list[tuple[int, str]], source: str = "recovery-plan.yaml") -> None:
        self.problems = sorted(set(problems))
        self.source = source
        lines = [f"{source}:{line}: {msg}" if line else f"{source}: {msg}" for line, msg in self.problems]
        super().__init__("the recovery plan is not valid:\n  " + "\n  ".join(lines))


# -- the model ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    id: str
    phase: str
    action: str
    component: str | None
    depends_on: tuple[str, ...]
    wait: str
    timeout_s: int
    retries: int
    on_failure: str
    fallback: str
    node: str | None = None
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class NodeEntry:
    name: str
    old_node: str | None
    role: str  # director | compute | storage | spare
    director: str | None
    root: str
    cpu_cores: int
    memory_mib: int
    disk_gib: int
    reserved_cpu: int
    reserved_memory_mib: int
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class PlacementEntry:
    vm_id: str
    name: str
    component: str
    director: str
    node: str
    cpu: int
    memory_mib: int
    disk_gib: int
    old_director: str
    old_cpu: int
    old_memory_mib: int
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class PoolEntry:
    name: str
    storage_class: str
    root: str
    capacity_gib: int
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class PathEntry:
    subject: str
    pool: str
    storage_class: str
    old_path: str
    new_path: str
    size_gib: float
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class SubnetEntry:
    name: str
    old: str
    new: str
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class AddressEntry:
    subnet: str
    owner: str
    old: str
    new: str
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Plan:
    backup_set_id: str
    environment: str
    adaptation_mode: str
    policy: AdaptationPolicy
    nodes: tuple[NodeEntry, ...]
    placements: tuple[PlacementEntry, ...]
    pools: tuple[PoolEntry, ...]
    paths: tuple[PathEntry, ...]
    subnets: tuple[SubnetEntry, ...]
    addresses: tuple[AddressEntry, ...]
    steps: tuple[Step, ...]
    adaptations: tuple[Adaptation, ...]
    recorded_sha256: str | None = field(default=None, compare=False)

    @property
    def sha256(self) -> str:
        """sha256 of the plan's content (everything but the recorded hash and YAML line numbers)."""
        return content_sha256(self)

    @property
    def edited(self) -> bool:
        """True when the plan was read back and its content no longer matches the hash it was written with."""
        return self.recorded_sha256 is not None and self.recorded_sha256 != self.sha256

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)


def _plain(value: Any) -> Any:
    """A dataclass tree as plain JSON data, without `line` fields."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k not in ("line", "recorded_sha256")}
    return value


def content_sha256(plan: Plan) -> str:
    data = _plain(asdict(plan))
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- generation --------------------------------------------------------------------------------------


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
) -> Plan:
    """The recovery plan of `environment` onto `inventory`; raises AdaptationError when it cannot fit."""
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
        adaptations=adapted.adaptations,
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


def _app_phases(env: Environment) -> dict[str, str]:
    """Phase of each application: its priority, promoted when a more important one hard-depends on it."""
    phase = {a.name: f"applications-{a.priority}" for a in env.applications}
    changed = True
    while changed:
        changed = False
        for app in env.applications:
            for dep, strength in app.depends_on:
                if (
                    strength == "hard"
                    and dep in phase
                    and PHASE_INDEX[phase[dep]] > PHASE_INDEX[phase[app.name]]
                ):
                    phase[dep] = phase[app.name]
                    changed = True
    return phase


# (timeout_s, retries, on_failure, fallback) for each kind of step
_RULES: dict[str, tuple[int, int, str, str]] = {
    "director": (1800, 2, "stop", "re-image the node and retry; the ring cannot form without every Director"),
    "ring": (600, 3, "stop", "restart the ring members one at a time, then retry"),
    "orchestrator": (1800, 2, "stop", "recreate the VM from its definition and restore the tables again"),
    "cluster": (900, 3, "stop", "re-run leader election from the Orchestrator with the newest state"),
    "pool": (300, 2, "stop", "check the storage root's mount, permissions and free space, then retry"),
    "storage-service": (
        1200,
        2,
        "stop",
        "recreate the VM and redeploy; nothing else restores without storage",
    ),
    "volume": (
        600,
        3,
        "skip-dependents",
        "resume from the last restored file; re-read the ISO part that failed",
    ),
    "volume-critical": (
        600,
        3,
        "stop",
        "resume from the last restored file; re-read the ISO part that failed",
    ),
    "service": (900, 2, "continue", "redeploy from its definition; recovery continues without it, reported"),
    "service-essential": (900, 2, "stop", "redeploy from its definition; auth and dns are required"),
    "applications-critical": (1200, 3, "stop", "roll back to the restored definition and retry"),
    "applications-standard": (
        900,
        2,
        "skip-dependents",
        "roll back to the restored definition and retry; reported as failed if it stays down",
    ),
    "applications-low": (
        900,
        1,
        "continue",
        "roll back to the restored definition and retry; reported as failed if it stays down",
    ),
    "verify-components": (900, 1, "continue", "report what failed; nothing is rolled back"),
    "verify-data": (3600, 1, "continue", "report the files that differ"),
    "report": (300, 2, "continue", "the report can be rebuilt from the database with the report command"),
    "backup": (7200, 1, "continue", "run the backup again by hand; recovery itself is complete"),
}
ESSENTIAL_SERVICES = ("auth", "dns")


def _step(
    rule: str,
    step_id: str,
    phase: str,
    action: str,
    wait: str,
    component: str | None = None,
    node: str | None = None,
    deps: Iterable[str] = (),
    extra_timeout: int = 0,
) -> Step:
    timeout, retries, on_failure, fallback = _RULES[rule]
    return Step(
        step_id,
        phase,
        action,
        component,
        tuple(deps),
        wait,
        timeout + extra_timeout,
        retries,
        on_failure,
        fallback,
        node,
    )


@dataclass(frozen=True)
class _Context:
    env: Environment
    plan: Plan
    addresses: dict[str, str]  # component → new address
    placement: dict[str, PlacementEntry]  # component → its VM's placement

    def vm(self, component: str, then: str) -> tuple[str, str | None]:
        """("create VM x on Director d" + `then`, node) for a component with a VM of its own; ("", None)
        for one without (another writer's set need not say which VM runs what)."""
        p = self.placement.get(component)
        return (f"create VM {p.name} on Director {p.director}{then}", p.node) if p else ("", None)

    def address(self, component: str) -> str:
        return self.addresses.get(component, "?")

    def on_address(self, component: str, text: str) -> str:
        """`text` with the component's new address put in for `{}`; "" for a component on no VM."""
        address = self.addresses.get(component)
        return text.format(address) if address else ""


def build_steps(env: Environment, plan: Plan, adapted: Adapted) -> tuple[Step, ...]:
    """Every step of the plan, grouped by phase, with hard dependencies and phase gates."""
    new_address = adapted.network.new_address
    ctx = _Context(
        env,
        plan,
        {c: new_address(a) for c, a in component_addresses(env).items()},
        {p.component: p for p in plan.placements},
    )
    raw = [
        *_control_plane_steps(ctx),
        *_storage_steps(ctx),
        *_service_steps(ctx),
        *_application_steps(ctx),
        *_closing_steps(),
    ]
    return _wire(raw, env)


def _control_plane_steps(ctx: _Context) -> list[Step]:
    env = ctx.env
    node_of = {n.director: n.name for n in ctx.plan.nodes if n.director}
    steps = [
        _step(
            "director",
            f"director/{d.director_id}",
            "directors",
            f"install Director {d.director_id} on {node_of[d.director_id]}; "
            "restore its configuration and state",
            f"Director {d.director_id} answers on https://{ctx.address(f'director:{d.director_id}')}:9443/health",
            f"director:{d.director_id}",
            node_of[d.director_id],
        )
        for d in sorted(env.directors, key=lambda d: d.director_id)
    ]
    for ring in sorted({d.ring_id for d in env.directors}):
        members = sorted(d.director_id for d in env.directors if d.ring_id == ring)
        steps.append(
            _step(
                "ring",
                f"ring/{ring}",
                "ring",
                f"form ring {ring} of {', '.join(members)}",
                f"all {len(members)} Directors report ring {ring} healthy with one leader",
                deps=[f"director/{m}" for m in members],
            )
        )
    for o in sorted(env.orchestrators, key=lambda o: o.orchestrator_id):
        cid = f"orchestrator:{o.orchestrator_id}"
        create, node = ctx.vm(cid, "; ")
        steps.append(
            _step(
                "orchestrator",
                f"orchestrator/{o.orchestrator_id}",
                "orchestrators",
                f"{create}install the Orchestrator; restore its database tables",
                f"Orchestrator {o.orchestrator_id} answers on https://{ctx.address(cid)}:7443/health",
                cid,
                node,
            )
        )
    for cluster in sorted({o.cluster_id for o in env.orchestrators}):
        members = sorted(o.orchestrator_id for o in env.orchestrators if o.cluster_id == cluster)
        steps.append(
            _step(
                "cluster",
                f"cluster/{cluster}",
                "cluster",
                f"form cluster {cluster} of {', '.join(members)}",
                f"cluster {cluster} has a leader and all {len(members)} members in sync",
                deps=[f"orchestrator/{m}" for m in members],
            )
        )
    return steps


def _storage_steps(ctx: _Context) -> list[Step]:
    roots = {p.name: p.root for p in ctx.plan.pools}
    used = sorted({p.pool for p in ctx.plan.paths})
    steps = [
        _step(
            "pool",
            f"storage/pool/{pool}",
            "storage",
            f"prepare storage root {roots[pool]}",
            f"{roots[pool]} is writable and has the planned capacity free",
        )
        for pool in used
    ]
    storage = [s for s in sorted(ctx.env.services, key=lambda s: s.name) if s.category == "storage"]
    for s in storage:
        cid = f"service:{s.name}"
        create, node = ctx.vm(cid, " and ")
        steps.append(
            _step(
                "storage-service",
                f"service/{s.name}",
                "storage",
                f"{create}deploy the storage service",
                "storage service answers" + ctx.on_address(cid, " on {}"),
                cid,
                node,
                [f"storage/pool/{pool}" for pool in used],
            )
        )
    paths = {p.subject: p for p in ctx.plan.paths}
    # An application restored in the critical phase (by priority, or promoted there because a critical
    # one hard-depends on it) has critical volumes.
    critical = {app for app, phase in _app_phases(ctx.env).items() if phase == "applications-critical"}
    for v in sorted(ctx.env.volumes, key=lambda v: v.component_id):
        path = paths[v.component_id]
        steps.append(
            _step(
                "volume-critical" if v.app in critical else "volume",
                f"volume/{v.app}/{v.name}",
                "volumes",
                f"restore volume data to {path.new_path}",
                f"every file of {v.component_id} restored and its sha256 matches the manifest",
                v.component_id,
                deps=[f"storage/pool/{path.pool}", *(f"service/{s.name}" for s in storage)],
                extra_timeout=int(60 * v.size_gib),
            )
        )
    return steps


def _service_steps(ctx: _Context) -> list[Step]:
    steps = []
    for s in sorted(ctx.env.services, key=lambda s: s.name):
        if s.category == "storage":
            continue
        cid = f"service:{s.name}"
        create, node = ctx.vm(cid, "; ")
        steps.append(
            _step(
                "service-essential" if s.name in ESSENTIAL_SERVICES else "service",
                f"service/{s.name}",
                "core-services",
                f"{create}restore core service {s.name} ({s.role})",
                f"service {s.name} answers its health check" + ctx.on_address(cid, " on {}"),
                cid,
                node,
            )
        )
    return steps


def _application_steps(ctx: _Context) -> list[Step]:
    phase_of = _app_phases(ctx.env)
    steps = []
    for a in sorted(ctx.env.applications, key=lambda a: (PHASE_INDEX[phase_of[a.name]], a.name)):
        cid = f"application:{a.name}"
        create, node = ctx.vm(cid, "; ")
        if not create:  # no VM of its own: its Orchestrator places its containers
            node = ctx.vm(f"orchestrator:{a.orchestrator}", "")[1]
        steps.append(
            _step(
                phase_of[a.name],
                f"application/{a.name}",
                phase_of[a.name],
                f"{create}recreate the definition in Orchestrator {a.orchestrator}; "
                f"start {len(a.containers)} containers bound to their volumes",
                f"all containers of {a.name} running and healthy" + ctx.on_address(cid, "; {} answers"),
                cid,
                node,
            )
        )
    return steps


def _closing_steps() -> list[Step]:
    return [
        _step(
            "verify-components",
            "verify/components",
            "verification",
            "check every restored component answers and every DNS record resolves to its new address",
            "all health checks pass",
        ),
        _step(
            "verify-data",
            "verify/data",
            "verification",
            "re-hash restored volume files against the backup manifests",
            "every restored file matches",
        ),
        _step(
            "report",
            "report/recovery",
            "report",
            "write the recovery report (HTML timeline and rows)",
            "report written",
        ),
        _step(
            "backup",
            "backup/post-recovery",
            "post-recovery-backup",
            "take the first post-recovery backup of the restored environment",
            "a complete, signed backup set is registered",
        ),
    ]


def _step_of(component: str) -> str | None:
    kind, _, name = component.partition(":")
    return (
        f"{kind}/{name}" if kind in ("director", "orchestrator", "service", "application", "volume") else None
    )


def _hard_dependencies(env: Environment, ids: Collection[str]) -> dict[str, set[str]]:
    """step → the steps of its component's hard dependencies (from the index), among `ids`."""
    hard: dict[str, set[str]] = {}
    for dep in env.dependencies:
        if dep.strength != "hard":
            continue
        a, b = _step_of(dep.component_id), _step_of(dep.depends_on_id)
        if a is not None and b is not None and a in ids and b in ids and a != b:
            hard.setdefault(a, set()).add(b)
    return hard


def _by_phase(steps: Iterable[Step]) -> dict[str, list[Step]]:
    by_phase: dict[str, list[Step]] = {}
    for s in steps:
        by_phase.setdefault(s.phase, []).append(s)
    return by_phase


def _sinks(phase_steps: list[Step]) -> set[str]:
    """The steps of one phase that no other step of it depends on: the next phase's gate."""
    needed = {d for s in phase_steps for d in s.depends_on}
    return {s.id for s in phase_steps if s.id not in needed}


def _phase_gates(steps: Iterable[Step]) -> dict[str, set[str]]:
    """phase → the sinks of the previous non-empty phase (what every step of the phase waits for)."""
    by_phase = _by_phase(steps)
    gates: dict[str, set[str]] = {}
    previous_sinks: set[str] = set()
    for phase in PHASES:
        gates[phase] = previous_sinks
        if phase in by_phase:
            previous_sinks = _sinks(by_phase[phase])
    return gates


def step_needs(plan: Plan, env: Environment) -> dict[str, frozenset[str]]:
    """step → the steps it needs, as opposed to waits for: its depends_on less the previous phase's
    gate, unless a gate step is also a hard dependency. A step whose need failed cannot do its work
    (on_failure skip-dependents skips it); one whose gate step failed can."""
    hard = _hard_dependencies(env, {s.id for s in plan.steps})
    gates = _phase_gates(plan.steps)
    return {
        s.id: frozenset(d for d in s.depends_on if d not in gates[s.phase] or d in hard.get(s.id, set()))
        for s in plan.steps
    }


def _wire(raw: list[Step], env: Environment) -> tuple[Step, ...]:
    """Add hard dependencies (from the index) and the gate of the previous non-empty phase to every step."""
    hard = _hard_dependencies(env, {s.id for s in raw})
    by_phase = _by_phase(raw)
    result: list[Step] = []
    previous_sinks: set[str] = set()
    for phase in PHASES:
        steps = by_phase.get(phase, [])
        if not steps:
            continue
        wired = []
        for s in steps:
            deps = set(s.depends_on) | hard.get(s.id, set()) | previous_sinks
            wired.append(replace(s, depends_on=tuple(sorted(deps))))
        previous_sinks = _sinks(wired)
        result.extend(_topological(wired))
    return tuple(result)


def _topological(steps: list[Step]) -> list[Step]:
    """`steps` (one phase) reordered so every step comes after the steps it depends on, else stable."""
    pending = list(steps)
    done: set[str] = set()
    ids = {s.id for s in steps}
    ordered: list[Step] = []
    while pending:
        ready = next((s for s in pending if all(d in done or d not in ids for d in s.depends_on)), pending[0])
        pending.remove(ready)
        done.add(ready.id)
        ordered.append(ready)
    return ordered


# -- validation --------------------------------------------------------------------------------------


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
    by_component = {s.component: s.id for s in plan.steps if s.component}
    for dep in env.dependencies:
        step, needed = by_component.get(dep.component_id), by_component.get(dep.depends_on_id)
        if dep.strength == "hard" and step and needed and needed not in _ancestors(steps, step):
            problems.append(
                (
                    steps[step].line,
                    f"step {step} must run after {needed} ({dep.component_id} hard-depends on it)",
                )
            )
    return problems


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


# -- YAML --------------------------------------------------------------------------------------------


def _flow(data: dict[str, Any]) -> str:
    return yaml.safe_dump(
        data, default_flow_style=True, sort_keys=False, width=10**6, allow_unicode=True
    ).strip()


def _scalar(value: Any) -> str:
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True)
        .strip()
        .removesuffix("\n...")
        .removesuffix("...")
        .strip()
    )


def plan_to_yaml(plan: Plan) -> str:
    """The plan as commented, stable YAML (the format `plan_from_yaml` reads; see docs/recovery-plan.md)."""
    out = [
        "# OmniCloud recovery plan — generated by omni-recovery plan-generate.",
        "# Read it, check it, edit it: execute-plan re-validates an edited plan (cycles, unknown",
        "# steps or components, phase order, capacity of nodes and storage pools, addresses) and",
        "# names the line at fault. sha256 is over the content as generated; after an edit it no",
        "# longer matches and the plan is reported as edited. `wait` says what shows a step done;",
        "# execute-plan checks what the restored state shows (files verified, ring and cluster",
        "# formed, storage roots writable with room for what is left), the health of running",
        "# components is for the operator to check once the nodes boot. A restore gets `timeout_s`",
        "# seconds; a failed step is tried `retries` more times, then its `on_failure` applies",
        "# (stop | skip-dependents | continue) as `fallback` describes. See docs/recovery-plan.md.",
        f"format: {PLAN_FORMAT}",
        f"backup_set_id: {_scalar(plan.backup_set_id)}",
        f"environment: {_scalar(plan.environment)}",
        f"adaptation_mode: {plan.adaptation_mode}",
        f"sha256: {plan.sha256}",
        "policy: " + _flow(asdict(plan.policy)),
        "",
        "# New nodes: capacity from the inventory, the old node and Director mapped onto each.",
        "nodes:",
    ]
    out += [f"  - {_flow(_plain(asdict(n)))}" for n in plan.nodes]
    out += [
        "",
        "# Every VM on its Director, with its (possibly scaled) CPU and memory and where it ran before.",
        "placements:",
    ]
    out += [f"  - {_flow(_plain(asdict(p)))}" for p in plan.placements]
    out += [
        "",
        "# Storage pools of the inventory, and every volume and Director path redirected into one.",
        "pools:",
    ]
    out += [f"  - {_flow(_plain(asdict(p)))}" for p in plan.pools]
    out += ["paths:"] + [f"  - {_flow(_plain(asdict(p)))}" for p in plan.paths]
    out += ["", "# Old subnets onto new ones, and every address re-allocated.", "subnets:"]
    out += [f"  - {_flow(_plain(asdict(s)))}" for s in plan.subnets]
    out += ["addresses:"] + [f"  - {_flow(_plain(asdict(a)))}" for a in plan.addresses]
    out += [
        "",
        "# The steps, phase by phase. depends_on lists the steps that must have succeeded first.",
        "steps:",
    ]
    phase = None
    for s in plan.steps:
        if s.phase != phase:
            phase = s.phase
            out.append(f"  # -- phase {phase} --")
        out.append(f"  - id: {_scalar(s.id)}")
        for key in ("phase", "action", "component", "node"):
            out.append(f"    {key}: {_scalar(getattr(s, key))}")
        out.append(f"    depends_on: {_scalar(list(s.depends_on))}")
        for key in ("wait", "timeout_s", "retries", "on_failure", "fallback"):
            out.append(f"    {key}: {_scalar(getattr(s, key))}")
    out += ["", "# Every adaptation made, old -> new, and why.", "adaptations:"]
    out += [f"  - {_flow(asdict(a))}" for a in plan.adaptations]
    return "\n".join(out) + "\n"


_SECTIONS: dict[str, tuple[type, tuple[str, ...]]] = {
    "nodes": (
        NodeEntry,
        (
            "name",
            "old_node",
            "role",
            "director",
            "root",
            "cpu_cores",
            "memory_mib",
            "disk_gib",
            "reserved_cpu",
            "reserved_memory_mib",
        ),
    ),
    "placements": (
        PlacementEntry,
        (
            "vm_id",
            "name",
            "component",
            "director",
            "node",
            "cpu",
            "memory_mib",
            "disk_gib",
            "old_director",
            "old_cpu",
            "old_memory_mib",
        ),
    ),
    "pools": (PoolEntry, ("name", "storage_class", "root", "capacity_gib")),
    "paths": (PathEntry, ("subject", "pool", "storage_class", "old_path", "new_path", "size_gib")),
    "subnets": (SubnetEntry, ("name", "old", "new")),
    "addresses": (AddressEntry, ("subnet", "owner", "old", "new")),
    "steps": (
        Step,
        (
            "id",
            "phase",
            "action",
            "component",
            "depends_on",
            "wait",
            "timeout_s",
            "retries",
            "on_failure",
            "fallback",
            "node",
        ),
    ),
    "adaptations": (Adaptation, ("kind", "subject", "old", "new", "reason")),
}
_OPTIONAL = {"old_node", "director", "component", "node"}
_INTS = {
    "cpu_cores",
    "memory_mib",
    "disk_gib",
    "reserved_cpu",
    "reserved_memory_mib",
    "cpu",
    "old_cpu",
    "old_memory_mib",
    "capacity_gib",
    "timeout_s",
    "retries",
}
_TOP = ("format", "backup_set_id", "environment", "adaptation_mode", "sha256", "policy", *_SECTIONS)


def plan_from_yaml(
    text: str,
    known_components: Collection[str] | None = None,
    inventory: Inventory | None = None,
    source: str = "recovery-plan.yaml",
    environment: Environment | None = None,
) -> Plan:
    """Read a (possibly edited) plan and re-validate it; raise PlanError naming each problem's line."""
    try:
        doc = load_yaml_with_lines(text)
    except yaml.YAMLError as exc:
        raise PlanError([(yaml_error_line(exc), f"not valid YAML: {exc}")], source) from exc
    problems: list[tuple[int, str]] = []
    if not isinstance(doc, LineMap):
        raise PlanError([(1, "a plan is a YAML mapping")], source)
    for key in doc:
        if key not in _TOP:
            problems.append((doc.line_of(key), f"unknown field {key!r}"))
    for key in _TOP:
        if key not in doc:
            problems.append((doc.line, f"missing field {key!r}"))
    if problems:
        raise PlanError(problems, source)
    if doc["format"] != PLAN_FORMAT:
        problems.append((doc.line_of("format"), f"format must be {PLAN_FORMAT}, found {doc['format']!r}"))
    policy = _policy(doc, problems)
    sections = {name: _section(doc, name, problems) for name in _SECTIONS}
    if problems:
        raise PlanError(problems, source)
    plan = Plan(
        backup_set_id=str(doc["backup_set_id"] or ""),
        environment=str(doc["environment"] or ""),
        adaptation_mode=str(doc["adaptation_mode"]),
        policy=policy,
        recorded_sha256=str(doc["sha256"]) if doc["sha256"] else None,
        **{name: tuple(items) for name, items in sections.items()},
    )
    problems = validate_plan(plan, known_components, inventory, environment)
    if problems:
        raise PlanError(problems, source)
    return plan


def _policy(doc: LineMap, problems: list[tuple[int, str]]) -> AdaptationPolicy:
    raw = doc["policy"]
    line = doc.line_of("policy")
    if not isinstance(raw, dict):
        problems.append((line, "policy must be a mapping"))
        return AdaptationPolicy()
    try:
        policy = AdaptationPolicy(**{k: float(v) for k, v in raw.items()})
    except (TypeError, ValueError) as exc:
        problems.append((line, f"policy: {exc}"))
        return AdaptationPolicy()
    if policy.cpu_overcommit <= 0 or not 0 < policy.scale_min <= 1 <= policy.scale_max:
        problems.append((line, "policy: cpu_overcommit must be positive and scale_min ≤ 1 ≤ scale_max"))
    return policy


def _section(doc: LineMap, name: str, problems: list[tuple[int, str]]) -> list[Any]:
    cls, fields = _SECTIONS[name]
    items = doc[name]
    if items is None:
        return []
    if not isinstance(items, LineList):
        problems.append((doc.line_of(name), f"{name} must be a list"))
        return []
    result = []
    for i, item in enumerate(items):
        line = items.line_of(i)
        if not isinstance(item, LineMap):
            problems.append((line, f"{name}: each entry must be a mapping"))
            continue
        bad = False
        for key in item:
            if key not in fields:
                problems.append(
                    (item.line_of(key), f"{name}: unknown field {key!r} (known: {', '.join(fields)})")
                )
                bad = True
        values: dict[str, Any] = {}
        for key in fields:
            if key not in item:
                if key in _OPTIONAL:
                    values[key] = None
                    continue
                problems.append((line, f"{name}: missing field {key!r}"))
                bad = True
                continue
            value = item[key]
            if key == "depends_on":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    problems.append((item.line_of(key), f"{name}: depends_on must be a list of step ids"))
                    bad = True
                    continue
                value = tuple(value)
            elif key in _INTS:
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    problems.append(
                        (item.line_of(key), f"{name}: {key} must be a whole number ≥ 0, found {value!r}")
                    )
                    bad = True
                    continue
            elif key == "size_gib":
                if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                    problems.append(
                        (item.line_of(key), f"{name}: size_gib must be a number ≥ 0, found {value!r}")
                    )
                    bad = True
                    continue
                value = float(value)
            elif value is not None or key not in _OPTIONAL:
                value = "" if value is None else str(value)
            values[key] = value
        if not bad:
            if cls is not Adaptation:
                values["line"] = line
            result.append(cls(**values))
    return result


# -- tables ------------------------------------------------------------------------------------------


def plan_tables(plan: Plan) -> dict[str, pl.DataFrame]:
    """The plan as polars tables for the recovery database and the report: steps (depends_on joined by
    commas), placements, paths, addresses and adaptations, each with the plan's backup_set_id and sha256."""
    tag = {"backup_set_id": plan.backup_set_id, "plan_sha256": plan.sha256}

    def frame(rows: Iterable[Any], **convert: Any) -> pl.DataFrame:
        data = [{**tag, **{k: convert.get(k, _same)(v) for k, v in _plain(asdict(r)).items()}} for r in rows]
        return pl.DataFrame(data, infer_schema_length=None)

    return {
        "plan_steps": frame(plan.steps, depends_on=lambda v: ",".join(v)),
        "plan_placements": frame(plan.placements),
        "plan_paths": frame(plan.paths),
        "plan_addresses": frame(plan.addresses),
        "plan_adaptations": frame(plan.adaptations),
    }


def _same(value: Any) -> Any:
    return value
