"""Gate steps: one per phase boundary instead of an edge from every step to every last step of the
phase before; plans written before them (tests/fixtures/recovery-plan-before-gates.yaml, written by
plan-generate before gates for the tiny demo on a same-shaped inventory) still read and mean the same."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from omni_recovery.adapt.inventory import Inventory
from tests.builders import reachable
from transforms.documents import Environment
from transforms.plan import (
    PHASE_INDEX,
    Plan,
    PlanError,
    plan_from_yaml,
    plan_needs,
    plan_to_yaml,
    step_needs,
    without_gates,
)
from transforms.plan_render import plan_to_dot, plan_to_svg

BEFORE_GATES = Path(__file__).resolve().parent.parent / "fixtures" / "recovery-plan-before-gates.yaml"


def test_every_phase_but_the_first_opens_with_one_gate_on_the_last_steps_of_the_phase_before(plan: Plan):
    phases = list(dict.fromkeys(s.phase for s in plan.steps))
    gates = [s for s in plan.steps if s.is_gate]
    assert [g.phase for g in gates] == phases[1:]
    for gate in gates:
        before = phases[phases.index(gate.phase) - 1]
        previous = [s for s in plan.steps if s.phase == before]
        depended = {d for s in previous for d in s.depends_on}
        assert set(gate.depends_on) == {s.id for s in previous if s.id not in depended}
        assert gate.component is None and gate.node is None and gate.id == f"gate/{gate.phase}"
        own = [s for s in plan.steps if s.phase == gate.phase and not s.is_gate]
        assert own and all(gate.id in s.depends_on for s in own)
        assert plan.steps.index(gate) < min(plan.steps.index(s) for s in own), "listed first in its phase"


def test_no_step_depends_on_an_earlier_phase_but_through_its_gate_or_for_a_need(
    plan: Plan, demo: Environment
) -> None:
    phase_of = {s.id: s.phase for s in plan.steps}
    needs = step_needs(plan, demo)
    for step in plan.steps:
        if step.is_gate:
            continue
        earlier = {d for d in step.depends_on if PHASE_INDEX[phase_of[d]] < PHASE_INDEX[step.phase]}
        waited = earlier - needs[step.id]
        # a ring or cluster lists its members, a volume its pool and storage service: their own
        own = {d for d in waited if step.kind in ("ring", "cluster", "volume")}
        assert waited == own, step.id


def test_a_plan_written_before_gates_reads_back_and_means_what_the_gated_one_does(
    plan: Plan, demo: Environment, inventory: Inventory
) -> None:
    old = plan_from_yaml(BEFORE_GATES.read_text(encoding="utf-8"), environment=demo, inventory=inventory)
    assert not any(s.is_gate for s in old.steps) and not old.edited
    assert old == without_gates(plan)
    assert {s.id for s in old.steps} == {s.id for s in plan.steps if not s.is_gate}
    # each step waits for the same steps, directly or not, and needs the same ones
    old_edges = {s.id: s.depends_on for s in old.steps}
    new_edges = {s.id: s.depends_on for s in plan.steps}
    for step in old.steps:
        waited_now = reachable(new_edges, new_edges[step.id]) - {s.id for s in plan.steps if s.is_gate}
        assert reachable(old_edges, old_edges[step.id]) == waited_now, step.id
    old_needs, new_needs = step_needs(old, demo), step_needs(plan, demo)
    assert all(old_needs[s] == new_needs[s] for s in old_needs)
    assert plan_needs(old) == {s: n for s, n in plan_needs(plan).items() if s in old_needs}
    edges = sum(len(s.depends_on) for s in plan.steps)
    assert edges < sum(len(s.depends_on) for s in old.steps)


def test_a_gate_naming_another_phase_or_a_component_is_refused_by_line(plan: Plan) -> None:
    text = plan_to_yaml(plan)
    renamed = text.replace("- id: gate/volumes\n    phase: volumes", "- id: gate/volumes\n    phase: storage")
    assert renamed != text
    with pytest.raises(PlanError, match=r"recovery-plan.yaml:\d+: step gate/volumes: a gate step is named"):
        plan_from_yaml(renamed)
    gate = plan.step("gate/volumes")
    owned = dataclasses.replace(gate, component="volume:billing/pgdata")
    edited = dataclasses.replace(plan, steps=tuple(owned if s == gate else s for s in plan.steps))
    with pytest.raises(PlanError, match="gate/volumes: a gate step restores nothing"):
        plan_from_yaml(plan_to_yaml(edited))


def test_the_yaml_the_graph_and_the_summary_show_gates_as_phase_boundaries(plan: Plan) -> None:
    text = plan_to_yaml(plan)
    assert "  # gate: phase volumes starts once these" in text
    gates = sum(1 for s in plan.steps if s.is_gate)
    assert f"{len(plan.steps) - gates} steps and {gates} gates" in plan_to_svg(plan)
    assert '"gate/volumes" [style="rounded,filled,dashed"' in plan_to_dot(plan)
