"""The plan's steps in node-sized groups for the restore workers: routed, complete, ordered."""

from __future__ import annotations

from graphlib import TopologicalSorter

from tests.builders import same_shaped
from transforms.documents import Environment
from transforms.plan import Plan, generate_plan, is_gate
from transforms.plan.node_groups import CONTROL_PHASES, StepGroup, step_groups, step_queues


def demo_plan(demo: Environment) -> tuple[Plan, dict[str, str]]:
    inventory = same_shaped(demo)
    plan = generate_plan(demo, inventory, "basic", "set")
    queues = step_queues(
        plan, {n.name: n.queue for n in inventory.nodes}, {"fast": "q-fast", "bulk": "q-bulk"}
    )
    return plan, queues


def test_each_step_goes_to_its_node_its_pool_or_the_place_of_what_it_needs(demo: Environment) -> None:
    plan, queues = demo_plan(demo)
    pool_of = {p.subject: p.pool for p in plan.paths}
    for step in plan.steps:
        if step.node is not None:
            assert queues[step.id] == f"omni-{step.node}", step.id
        elif step.component in pool_of:
            assert queues[step.id] == f"q-{pool_of[step.component]}", step.id
        elif step.id.startswith("storage/pool/"):
            assert queues[step.id] == f"q-{step.id.rsplit('/', 1)[1]}"
    ring = next(s for s in plan.steps if s.phase == "ring")
    assert queues[ring.id] == queues[ring.depends_on[0]], "a ring runs where its first Director does"


def test_groups_hold_every_node_step_once_one_phase_and_queue_each(demo: Environment) -> None:
    plan, queues = demo_plan(demo)
    groups = step_groups(plan, queues)
    grouped = [step_id for g in groups for step_id in g.step_ids]
    node_steps = [s.id for s in plan.steps if s.phase not in CONTROL_PHASES]
    assert sorted(grouped) == sorted(node_steps)
    for group in groups:
        assert {plan.step(s).phase for s in group.step_ids} == {group.phase}
        assert {queues[s] for s in group.step_ids} == {group.queue}
    assert len({g.name for g in groups}) == len(groups)
    volume_groups = [g for g in groups if g.phase == "volumes" and not is_gate(g.step_ids[0])]
    assert len({g.queue for g in volume_groups}) == 2, "the volumes go to both pools"


def test_a_gate_is_alone_in_its_group_and_its_phase_s_other_groups_come_after_it(demo: Environment) -> None:
    plan, queues = demo_plan(demo)
    groups = step_groups(plan, queues)
    gates = [g for g in groups if any(is_gate(s) for s in g.step_ids)]
    assert gates, "the demo plan has gates between its phases"
    for gate in gates:
        assert len(gate.step_ids) == 1
        others = [g for g in groups if g.phase == gate.phase and g is not gate]
        assert others and all(gate.name in g.after for g in others), gate.name


def test_a_group_runs_after_the_groups_of_every_step_it_needs_and_none_waits_on_itself(
    demo: Environment,
) -> None:
    plan, queues = demo_plan(demo)
    groups = step_groups(plan, queues)
    order = list(TopologicalSorter({g.name: set(g.after) for g in groups}).static_order())  # no cycle
    position = {name: i for i, name in enumerate(order)}
    group_of = {s: g for g in groups for s in g.step_ids}
    for group in groups:
        for step_id in group.step_ids:
            for needed in plan.step(step_id).depends_on:
                if needed in group_of and group_of[needed] is not group:
                    assert position[group_of[needed].name] < position[group.name], (needed, step_id)
    assert all(isinstance(g, StepGroup) and g.name.isidentifier() for g in groups)
    assert any(g.name.startswith("core_services_1__") for g in groups), "services needing services wait"
