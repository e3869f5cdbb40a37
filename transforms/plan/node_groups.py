"""The plan's steps in node-sized groups: what the restore workers run, one group per (phase, queue).

A Dagster step of the `restore` job is a whole phase, which one process runs everywhere; a worker
next to a node should run only that node's steps. So each group holds the steps of one phase that
go to one queue: a step placed on a node goes to that node's queue, a storage pool's preparation
and the volumes on a pool to the pool's queue, a step with no place of its own (a ring, a cluster)
to the queue of the first step it depends on that has one, else the first node's. A gate step (a
phase boundary: no work) goes where the first step it waits for went, alone in its group, since
every other step of its phase depends on it: the phase's groups start once it has. Groups, not
single steps, keep the engine's fixed cost per task (a Dagster step in a worker: about a second)
at one per node and phase, whatever the number of volumes. The phases that judge the whole run
(verification, report, post-recovery backup) are left to the control node (`CONTROL_PHASES`).

A group runs after every group holding a step one of its steps depends on. Steps of one phase that
need others of that phase (an application's hard dependency of the same priority) are in a later
wave of the phase: groups of one wave never need each other, so no two groups wait on each other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from transforms.plan.model import Plan, Step

CONTROL_PHASES = ("verification", "report", "post-recovery-backup")
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class StepGroup:
    name: str  # a Dagster op name: letters, digits and _
    phase: str
    queue: str
    step_ids: tuple[str, ...]
    after: tuple[str, ...]  # names of the groups that must end first


def step_queues(plan: Plan, node_queues: Mapping[str, str], pool_queues: Mapping[str, str]) -> dict[str, str]:
    """step id → the queue of the worker that runs it (see the module documentation)."""
    pool_of = {p.subject: p.pool for p in plan.paths}
    first = node_queues[plan.nodes[0].name] if plan.nodes else next(iter(node_queues.values()))
    queues: dict[str, str] = {}
    for step in plan.steps:
        if step.node is not None and step.node in node_queues:
            queues[step.id] = node_queues[step.node]
        elif step.id.startswith("storage/pool/"):
            queues[step.id] = pool_queues.get(step.id.removeprefix("storage/pool/"), first)
        elif step.component in pool_of:
            queues[step.id] = pool_queues.get(pool_of[step.component], first)
        else:
            placed = [queues[d] for d in step.depends_on if d in queues]
            queues[step.id] = placed[0] if placed else first
    return queues


def step_groups(plan: Plan, queues: Mapping[str, str]) -> list[StepGroup]:
    """The plan's steps but the control phases', grouped by (phase, wave, queue), in plan order."""
    steps = [s for s in plan.steps if s.phase not in CONTROL_PHASES]
    waves = _waves(steps)
    members: dict[str, list[Step]] = {}
    for step in steps:
        members.setdefault(_name(step.phase, waves[step.id], queues[step.id]), []).append(step)
    group_of = {s.id: name for name, grouped in members.items() for s in grouped}
    return [
        StepGroup(
            name,
            grouped[0].phase,
            queues[grouped[0].id],
            tuple(s.id for s in grouped),
            tuple(sorted({group_of[d] for s in grouped for d in s.depends_on if d in group_of} - {name})),
        )
        for name, grouped in members.items()
    ]


def _waves(steps: list[Step]) -> dict[str, int]:
    """step id → its wave in its phase: 0 for a step that needs no step of its own phase, else one
    more than the latest wave of those it needs (the plan's steps form no cycle: validated)."""
    by_id = {s.id: s for s in steps}
    waves: dict[str, int] = {}

    def wave(step: Step) -> int:
        if step.id not in waves:
            same = [by_id[d] for d in step.depends_on if d in by_id and by_id[d].phase == step.phase]
            waves[step.id] = 1 + max(map(wave, same)) if same else 0
        return waves[step.id]

    for step in steps:
        wave(step)
    return waves


def _name(phase: str, wave: int, queue: str) -> str:
    return _UNSAFE.sub("_", f"{phase}{f'_{wave}' if wave else ''}__{queue}")
