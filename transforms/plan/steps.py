"""The plan's steps: one per component and phase, wired into a DAG that runs phases in order.

Every step depends on its hard dependencies and on the last steps of the previous phase, so phases run
in order and a hard dependency always runs before its dependent. `_RULES` gives each kind of step its
timeout, retries, on_failure and fallback; the wiring is `wiring.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from transforms.adapt.network import component_addresses
from transforms.documents import Environment
from transforms.plan.model import PHASE_INDEX, PlacementEntry, Plan, Step
from transforms.plan.wiring import wire

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
    return wire(raw, env)


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


if TYPE_CHECKING:
    from transforms.plan.generate import Adapted
