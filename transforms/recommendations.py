"""Recommendations after a recovery: what was measured and placed, read for the next move.

Pure functions over rows (no Dagster, no I/O); `recommend` returns every recommendation with its
evidence:

- `slow-step`: the steps that took the largest share of the step time, with their throughput
  against the fastest step of the same phase;
- `parallel-factor`: the concurrency the run reached against --parallel-factor (steps waited for
  a slot: raise it; slots stood idle: lower it);
- `node-over-committed` / `node-under-used`: Director nodes whose placed CPU or memory is above
  their capacity, or below UNDER_USED of it;
- `rebalance`: an application VM scaled below its original request while another Director has
  room for the original request: move it there and restore the request;
- `pool-nearly-full`: storage pools whose restored volumes fill more than NEARLY_FULL of them.

What can go wrong: nothing raises; steps without a duration or bytes are not compared, and a run
with no step time yields no parallel-factor advice.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from transforms.plan import Plan

UNDER_USED = 0.25
NEARLY_FULL = 0.85
DOMINANT_SHARE = 0.2


@dataclass(frozen=True)
class StepRow:
    step_id: str
    phase: str
    seconds: float
    bytes_written: int


@dataclass(frozen=True)
class NodeRow:
    """A Director node and what it can hold: vCPUs (after overcommit) and MiB, reservations taken off."""

    name: str
    cpu_capacity: float
    memory_capacity_mib: int


@dataclass(frozen=True)
class PlacementRow:
    name: str
    node: str
    cpu: int
    memory_mib: int
    old_cpu: int
    old_memory_mib: int


@dataclass(frozen=True)
class PoolRow:
    name: str
    capacity_gib: float
    used_gib: float


@dataclass(frozen=True)
class Recommendation:
    kind: str
    subject: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


def recommend(
    steps: list[StepRow],
    nodes: list[NodeRow],
    placements: list[PlacementRow],
    pools: list[PoolRow],
    *,
    parallel_factor: int,
    wall_seconds: float,
) -> list[Recommendation]:
    """Every recommendation the run's measurements and placements support."""
    return [
        *slow_steps(steps),
        *parallelism(steps, parallel_factor, wall_seconds),
        *node_commitments(nodes, placements),
        *rebalance(nodes, placements),
        *nearly_full_pools(pools),
    ]


def recommend_for_plan(
    plan: Plan,
    steps: list[StepRow],
    *,
    parallel_factor: int,
    wall_seconds: float,
    moved: dict[str, dict[str, Any]] | None = None,
) -> list[Recommendation]:
    """Every recommendation for a run of `plan` (with the rebalances `moved` already applied)."""
    return recommend(
        steps,
        node_rows(plan),
        placement_rows(plan, moved),
        pool_rows(plan),
        parallel_factor=parallel_factor,
        wall_seconds=wall_seconds,
    )


def node_rows(plan: Plan) -> list[NodeRow]:
    """Director nodes and what they hold: (cores − reserved) × overcommit vCPUs, memory − reserved."""
    return [
        NodeRow(
            n.name,
            (n.cpu_cores - n.reserved_cpu) * plan.policy.cpu_overcommit,
            n.memory_mib - n.reserved_memory_mib,
        )
        for n in plan.nodes
        if n.role == "director"
    ]


def placement_rows(plan: Plan, moved: dict[str, dict[str, Any]] | None = None) -> list[PlacementRow]:
    """The plan's placements, with the rebalances already applied (`moved`: VM name → its new place)."""
    rows = []
    for p in plan.placements:
        now = (moved or {}).get(p.name, {})
        node, cpu, memory = (
            now.get("node", p.node),
            now.get("cpu", p.cpu),
            now.get("memory_mib", p.memory_mib),
        )
        rows.append(PlacementRow(p.name, node, cpu, memory, p.old_cpu, p.old_memory_mib))
    return rows


def pool_rows(plan: Plan) -> list[PoolRow]:
    used: dict[str, float] = defaultdict(float)
    for path in plan.paths:
        used[path.pool] += path.size_gib
    return [PoolRow(p.name, p.capacity_gib, used[p.name]) for p in plan.pools]


def _mib_per_s(step: StepRow) -> float:
    return step.bytes_written / step.seconds / 2**20 if step.seconds > 0 else 0.0


def slow_steps(steps: list[StepRow]) -> list[Recommendation]:
    total = sum(s.seconds for s in steps)
    found = []
    for step in sorted(steps, key=lambda s: -s.seconds):
        if total <= 0 or step.seconds < DOMINANT_SHARE * total:
            break
        peers = [_mib_per_s(s) for s in steps if s.phase == step.phase and s.bytes_written > 0]
        evidence = {"seconds": round(step.seconds, 2), "share": round(step.seconds / total, 3)}
        if step.bytes_written and peers:
            evidence |= {"mib_per_s": round(_mib_per_s(step), 2), "fastest_in_phase": round(max(peers), 2)}
        found.append(
            Recommendation(
                "slow-step",
                step.step_id,
                f"{step.step_id} took {evidence['share']:.0%} of the step time: give its node or pool "
                "faster storage, or set its priority so that it starts first",
                evidence,
            )
        )
    return found


def parallelism(steps: list[StepRow], parallel_factor: int, wall_seconds: float) -> list[Recommendation]:
    busy = sum(s.seconds for s in steps)
    if wall_seconds <= 0 or busy <= 0:
        return []
    reached = busy / wall_seconds
    evidence = {
        "parallel_factor": parallel_factor,
        "reached": round(reached, 2),
        "wall_seconds": wall_seconds,
    }
    if reached >= 0.8 * parallel_factor:
        suggested = parallel_factor * 2
        why = "steps waited for a free slot"
    elif reached < 0.5 * parallel_factor and parallel_factor > 1:
        suggested = max(1, round(reached))
        why = "most slots stood idle"
    else:
        return []
    return [
        Recommendation(
            "parallel-factor",
            "execute-plan",
            f"use --parallel-factor {suggested} next time: {why} "
            f"(reached {reached:.1f} of {parallel_factor})",
            evidence | {"suggested": suggested},
        )
    ]


def _committed(node: str, placements: list[PlacementRow]) -> tuple[int, int]:
    on = [p for p in placements if p.node == node]
    return sum(p.cpu for p in on), sum(p.memory_mib for p in on)


def node_commitments(nodes: list[NodeRow], placements: list[PlacementRow]) -> list[Recommendation]:
    found = []
    for node in nodes:
        cpu, memory = _committed(node.name, placements)
        shares = {"cpu": cpu / node.cpu_capacity, "memory": memory / node.memory_capacity_mib}
        evidence = {"cpu": cpu, "cpu_capacity": node.cpu_capacity, "memory_mib": memory}
        evidence |= {"memory_capacity_mib": node.memory_capacity_mib}
        if max(shares.values()) > 1:
            what = ", ".join(f"{k} {v:.0%}" for k, v in shares.items() if v > 1)
            message = f"{node.name} is over its capacity: {what}"
            found.append(Recommendation("node-over-committed", node.name, message, evidence))
        elif max(shares.values()) < UNDER_USED:
            found.append(
                Recommendation(
                    "node-under-used",
                    node.name,
                    f"{node.name} holds under {UNDER_USED:.0%} of its capacity: move VMs onto it",
                    evidence,
                )
            )
    return found


def rebalance(nodes: list[NodeRow], placements: list[PlacementRow]) -> list[Recommendation]:
    """Scaled-down application VMs moved, biggest shortfall first, onto the node with the most room
    for their original request (room is taken as each move is decided)."""
    room = {}
    for node in nodes:
        cpu, memory = _committed(node.name, placements)
        room[node.name] = (node.cpu_capacity - cpu, node.memory_capacity_mib - memory)
    shrunk = [p for p in placements if p.cpu < p.old_cpu or p.memory_mib < p.old_memory_mib]
    found = []
    for vm in sorted(shrunk, key=lambda p: (p.cpu - p.old_cpu, p.memory_mib - p.old_memory_mib, p.name)):
        fits = [
            n for n, (c, m) in room.items() if n != vm.node and c >= vm.old_cpu and m >= vm.old_memory_mib
        ]
        if not fits:
            continue
        target = max(fits, key=lambda n: (room[n], n))
        room[target] = (room[target][0] - vm.old_cpu, room[target][1] - vm.old_memory_mib)
        room[vm.node] = (room[vm.node][0] + vm.cpu, room[vm.node][1] + vm.memory_mib)
        found.append(
            Recommendation(
                "rebalance",
                vm.name,
                f"move {vm.name} from {vm.node} to {target} and give it back its original "
                f"{vm.old_cpu} vCPU, {vm.old_memory_mib} MiB (now {vm.cpu} vCPU, {vm.memory_mib} MiB)",
                {"from": vm.node, "to": target, "cpu": [vm.cpu, vm.old_cpu]}
                | {"memory_mib": [vm.memory_mib, vm.old_memory_mib]},
            )
        )
    return found


def nearly_full_pools(pools: list[PoolRow]) -> list[Recommendation]:
    return [
        Recommendation(
            "pool-nearly-full",
            pool.name,
            f"pool {pool.name} is {pool.used_gib / pool.capacity_gib:.0%} full: "
            "choose a larger pool next time",
            {"used_gib": round(pool.used_gib, 3), "capacity_gib": pool.capacity_gib},
        )
        for pool in pools
        if pool.capacity_gib > 0 and pool.used_gib / pool.capacity_gib > NEARLY_FULL
    ]
