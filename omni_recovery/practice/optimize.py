"""`omni performance optimize`: the recommendations of a finished recovery, with their evidence.

How it works: `recommendations_for(url, run_id)` reads one recovery run (default: the most recently
started) from the recovery database: its steps (phase, seconds, bytes written), its options
(--parallel-factor) and its plan as recorded (Director nodes with their capacity after
reservations and CPU overcommit, the VM placements with their original requests, the pools and
the volume sizes placed on them), turns them into rows and hands them to
transforms.recommendations.

`apply_rebalances` applies the recommendations that change the restored environment: each
rebalance moves the VM's entry from its Director's `state.json` to the other Director's, with its
original request, both documents written atomically on their node roots, and records the move as
a `rebalance` adaptation of the run's plan (and in the audit log); later analyses of the run read
the placements with the moves applied, so a move is never recommended twice.

What can go wrong: no recovery run recorded (say so); a run still going (its unfinished steps are
left out, and the wall time runs to now); a Director document that no longer holds the VM (the
environment changed since) stops the apply naming the document. The two documents of one move are
written target first: a crash between them leaves the VM listed twice, never lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from omni_recovery.db.audit import audit
from omni_recovery.db.connection import connect
from omni_recovery.errors import RecoveryError
from omni_recovery.targets.driver import TargetRoot
from transforms.plan import NodeEntry, Plan, plan_from_yaml
from transforms.recommendations import Recommendation, StepRow, recommend_for_plan
from transforms.target_layout import dump_json


@dataclass(frozen=True)
class RunRecommendations:
    run_id: str
    backup_set_id: str
    plan_id: str
    plan: Plan
    recommendations: list[Recommendation]


def recommendations_for(url: str, run_id: str | None = None) -> RunRecommendations:
    """The recommendations of recovery run `run_id` (default: the most recently started)."""
    with connect(url) as conn:
        run = conn.execute(
            "SELECT r.run_id, p.backup_set_id, p.plan_yaml, r.options, r.started_at, r.finished_at, "
            "r.plan_id "
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
        moved = applied_moves(conn, run[6])
    plan = plan_from_yaml(run[2])
    options: dict[str, Any] = run[3] or {}
    wall = ((run[5] or datetime.now(UTC)) - run[4]).total_seconds()
    found = recommend_for_plan(
        plan,
        [StepRow(s, ph, float(sec), int(b)) for s, ph, sec, b in steps],
        parallel_factor=int(options.get("parallel_factor", 2)),
        wall_seconds=wall,
        moved=moved,
    )
    return RunRecommendations(run[0], run[1], run[6], plan, [_with_documents(r, plan) for r in found])


def applied_moves(conn: psycopg.Connection[Any], plan_id: str) -> dict[str, dict[str, Any]]:
    """VM name → where and how large it is after the rebalances applied to the plan's environment."""
    rows = conn.execute(
        "SELECT subject, new_value FROM omni.adaptations WHERE plan_id = %s AND kind = 'rebalance' "
        "ORDER BY adaptation_id",
        (plan_id,),
    ).fetchall()
    return {str(subject): dict(new) for subject, new in rows}


def _state_document(node: NodeEntry) -> tuple[TargetRoot, str]:
    return TargetRoot(node.root, create=False), f"directors/{node.director}/state.json"


def _with_documents(found: Recommendation, plan: Plan) -> Recommendation:
    """A rebalance names the two documents applying it rewrites."""
    if found.kind != "rebalance":
        return found
    nodes = {n.name: n for n in plan.nodes}
    names = [
        f"{nodes[found.evidence[end]].root}: directors/{nodes[found.evidence[end]].director}/state.json"
        for end in ("from", "to")
    ]
    return replace(found, evidence=found.evidence | {"documents": names})


def apply_rebalances(url: str, found: RunRecommendations) -> list[Recommendation]:
    """Apply every rebalance of `found` to the restored Directors' state; the ones applied."""
    nodes = {n.name: n for n in found.plan.nodes}
    applied = []
    for item in (r for r in found.recommendations if r.kind == "rebalance"):
        source, target = nodes[item.evidence["from"]], nodes[item.evidence["to"]]
        cpu, memory = item.evidence["cpu"][1], item.evidence["memory_mib"][1]
        _move_vm(item.subject, source, target, cpu, memory)
        new = {"node": target.name, "director": target.director, "cpu": cpu, "memory_mib": memory}
        old = {"node": source.name, "director": source.director, "cpu": item.evidence["cpu"][0]}
        with connect(url) as conn:
            conn.execute(
                "INSERT INTO omni.adaptations (plan_id, kind, subject, old_value, new_value, reason) "
                "VALUES (%s, 'rebalance', %s, %s, %s, %s)",
                (
                    found.plan_id,
                    item.subject,
                    Jsonb(old | {"memory_mib": item.evidence["memory_mib"][0]}),
                    Jsonb(new),
                    f"omni performance optimize after recovery run {found.run_id}: {item.message}",
                ),
            )
            audit(conn, "optimize.apply", item.subject, {"run_id": found.run_id, **item.evidence})
            conn.commit()
        applied.append(item)
    return applied


def _move_vm(name: str, source: NodeEntry, target: NodeEntry, cpu: int, memory_mib: int) -> None:
    """The VM's entry moved from the source Director's state.json to the target's, resized."""
    (from_root, from_rel), (to_root, to_rel) = _state_document(source), _state_document(target)
    leaving = json.loads(from_root.read_bytes(from_rel))
    arriving = json.loads(to_root.read_bytes(to_rel))
    vm = next((v for v in leaving.get("vms") or [] if v.get("name") == name), None)
    if vm is None:
        raise RecoveryError(
            f"{from_root.url}: {from_rel}: VM {name} is not there any more; nothing was changed"
        )
    leaving["vms"] = [v for v in leaving["vms"] if v is not vm]
    arriving["vms"] = [*(arriving.get("vms") or []), vm | {"cpu": cpu, "memory_mib": memory_mib}]
    to_root.write_bytes_atomic(to_rel, dump_json(arriving))
    from_root.write_bytes_atomic(from_rel, dump_json(leaving))
