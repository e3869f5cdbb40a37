"""`omni performance optimize`: the recommendations of a finished recovery, with their evidence.

How it works: `recommendations_for(url, run_id)` reads one recovery run (default: the most recently
started) from the recovery database: its steps (phase, seconds, bytes written), its options
(--parallel-factor) and its plan as recorded (Director nodes with their capacity after
reservations and CPU overcommit, the VM placements with their original requests, the pools and
the volume sizes placed on them), turns them into rows and hands them to
transforms.recommendations.

What can go wrong: no recovery run recorded (say so); a run still going (its unfinished steps are
left out, and the wall time runs to now). Applying the recommendations is not built yet: this
only lists them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from omni_recovery.db.connection import connect
from omni_recovery.errors import RecoveryError
from transforms.planner import Plan, plan_from_yaml
from transforms.recommendations import NodeRow, PlacementRow, PoolRow, Recommendation, StepRow, recommend


@dataclass(frozen=True)
class RunRecommendations:
    run_id: str
    backup_set_id: str
    recommendations: list[Recommendation]


def recommendations_for(url: str, run_id: str | None = None) -> RunRecommendations:
    """The recommendations of recovery run `run_id` (default: the most recently started)."""
    with connect(url) as conn:
        run = conn.execute(
            "SELECT r.run_id, p.backup_set_id, p.plan_yaml, r.options, r.started_at, r.finished_at "
            "FROM omni.recovery_runs r JOIN omni.recovery_plans p USING (plan_id) "
            "WHERE %s::text IS NULL OR r.run_id = %s ORDER BY r.started_at DESC LIMIT 1",
            (run_id, run_id),
        ).fetchone()
        if run is None:
            raise RecoveryError(
                f"no recovery run {run_id} on record" if run_id else "no recovery run on record"
            )
        steps = conn.execute(
            "SELECT step_id, phase, extract(epoch FROM finished_at - started_at), bytes_written "
            "FROM omni.recovery_steps WHERE run_id = %s AND finished_at IS NOT NULL "
            "AND started_at IS NOT NULL",
            (run[0],),
        ).fetchall()
    plan = plan_from_yaml(run[2])
    options: dict[str, Any] = run[3] or {}
    wall = ((run[5] or datetime.now(UTC)) - run[4]).total_seconds()
    found = recommend(
        [StepRow(s, ph, float(sec), int(b)) for s, ph, sec, b in steps],
        node_rows(plan),
        placement_rows(plan),
        pool_rows(plan),
        parallel_factor=int(options.get("parallel_factor", 2)),
        wall_seconds=wall,
    )
    return RunRecommendations(run[0], run[1], found)


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


def placement_rows(plan: Plan) -> list[PlacementRow]:
    return [
        PlacementRow(p.name, p.node, p.cpu, p.memory_mib, p.old_cpu, p.old_memory_mib)
        for p in plan.placements
    ]


def pool_rows(plan: Plan) -> list[PoolRow]:
    used: dict[str, float] = defaultdict(float)
    for path in plan.paths:
        used[path.pool] += path.size_gib
    return [PoolRow(p.name, p.capacity_gib, used[p.name]) for p in plan.pools]
