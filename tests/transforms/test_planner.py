"""The recovery plan as YAML: written readable and stable, read back, and an edited plan re-validated."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from omni_recovery.adapt.inventory import Inventory
from omni_recovery.errors import RecoveryError
from tests.builders import same_shaped
from transforms.documents import Environment
from transforms.plan import (
    PLAN_FORMAT,
    Plan,
    PlanError,
    find_cycle,
    generate_plan,
    plan_from_yaml,
    plan_to_yaml,
    step_needs,
)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def problems(text: str, demo: Environment, inventory: Inventory | None = None) -> list[tuple[int, str]]:
    with pytest.raises(PlanError) as caught:
        plan_from_yaml(text, demo.component_ids(), inventory)
    assert isinstance(caught.value, RecoveryError)
    return caught.value.problems


def test_the_yaml_is_readable_stable_and_round_trips(
    plan: Plan, demo: Environment, inventory: Inventory
) -> None:
    text = plan_to_yaml(plan)
    assert text.startswith("# OmniCloud recovery plan")
    doc = yaml.safe_load(text)
    assert doc["format"] == PLAN_FORMAT and doc["backup_set_id"] == "demo-20261124t0200z"
    assert doc["sha256"] == plan.sha256 and len(plan.sha256) == 64
    assert "  # -- phase applications-critical --" in text
    back = plan_from_yaml(text, demo.component_ids(), inventory)
    assert back == plan and not back.edited and back.recorded_sha256 == plan.sha256
    assert plan_to_yaml(back) == text  # stable
    assert generate_plan(demo, inventory, "basic", "demo-20261124t0200z").sha256 == plan.sha256


def test_every_step_has_wait_timeout_and_fallback(plan: Plan) -> None:
    for step in plan.steps:
        assert step.wait and step.fallback and step.timeout_s > 0 and step.on_failure
    critical = [s for s in plan.steps if s.phase == "applications-critical" and not s.is_gate]
    assert critical and all(s.on_failure == "stop" for s in critical)
    billing = plan.step("application/billing")
    assert "volume/billing/pgdata" in billing.depends_on and billing.node


def test_a_component_on_no_vm_is_waited_for_without_an_address(demo: Environment) -> None:
    app = demo.applications[0]
    vms = tuple(vm for vm in demo.vms if vm.owner != f"application:{app.name}")
    without = dataclasses.replace(demo, vms=vms)
    plan = generate_plan(without, same_shaped(without), "basic", "demo-20261124t0200z")
    assert plan.step(f"application/{app.name}").wait == f"all containers of {app.name} running and healthy"
    assert all("?" not in step.wait for step in plan.steps)
    other = plan.step(f"application/{demo.applications[1].name}").wait
    assert other.startswith(f"all containers of {demo.applications[1].name} running and healthy; ")
    assert other.endswith(" answers")


def test_an_edit_that_keeps_the_plan_valid_is_accepted_and_reported(plan: Plan, demo: Environment) -> None:
    text = plan_to_yaml(plan)
    at = line_of(text, "- id: volume/billing/pgdata")
    lines = text.splitlines()
    timeout = next(i for i in range(at, at + 12) if lines[i].strip().startswith("timeout_s:"))
    lines[timeout] = "    timeout_s: 7200"
    edited = plan_from_yaml("\n".join(lines) + "\n", demo.component_ids())
    assert edited.edited and edited.step("volume/billing/pgdata").timeout_s == 7200


def _edit(plan: Plan, step_id: str, **changes: object) -> str:
    steps = tuple(dataclasses.replace(s, **changes) if s.id == step_id else s for s in plan.steps)  # type: ignore[arg-type]
    return plan_to_yaml(dataclasses.replace(plan, steps=steps))


def test_a_cycle_is_refused_naming_the_line(plan: Plan, demo: Environment) -> None:
    text = _edit(plan, "volume/billing/invoices", depends_on=("volume/billing/logs",))
    text = plan_to_yaml(
        dataclasses.replace(
            plan_from_yaml(text, demo.component_ids()),
            steps=tuple(
                dataclasses.replace(s, depends_on=(*s.depends_on, "volume/billing/invoices"))
                if s.id == "volume/billing/logs"
                else s
                for s in plan_from_yaml(text, demo.component_ids()).steps
            ),
        )
    )
    found = problems(text, demo)
    cycle = [(line, msg) for line, msg in found if "dependency cycle" in msg]
    assert cycle, found
    line, message = cycle[0]
    assert "volume/billing/invoices -> volume/billing/logs -> volume/billing/invoices" in message or (
        "volume/billing/logs -> volume/billing/invoices -> volume/billing/logs" in message
    )
    assert text.splitlines()[line - 1].strip().startswith("- id: volume/billing/")


def test_unknown_components_steps_phases_and_fields(plan: Plan, demo: Environment) -> None:
    text = _edit(plan, "application/billing", component="application:ghost")
    assert (
        line_of(text, "- id: application/billing"),
        "step application/billing: unknown component application:ghost (not in the backup set)",
    ) in problems(text, demo)
    text = _edit(plan, "application/orders", depends_on=("application/nope",))
    assert any("depends on unknown step 'application/nope'" in m for _, m in problems(text, demo))
    text = _edit(plan, "application/orders", phase="teatime")
    assert any("unknown phase 'teatime'" in m for _, m in problems(text, demo))
    text = plan_to_yaml(plan).replace("    timeout_s: 1800\n", "    timeout: 1800\n", 1)
    found = problems(text, demo)
    assert any(line == line_of(text, "timeout: 1800") and "unknown field 'timeout'" in m for line, m in found)
    assert any("missing field 'timeout_s'" in m for _, m in found)


def test_a_step_before_its_phase_is_refused(plan: Plan, demo: Environment) -> None:
    text = _edit(plan, "director/dir-1", depends_on=("application/billing",))
    found = problems(text, demo)
    assert (
        line_of(text, "- id: director/dir-1"),
        "step director/dir-1 (phase directors) depends on application/billing of the later phase "
        "applications-critical",
    ) in found


def test_a_placement_beyond_capacity_is_refused_naming_the_line(
    plan: Plan, demo: Environment, inventory: Inventory
) -> None:
    victim = plan.placements[0]
    placements = tuple(dataclasses.replace(p, cpu=500) if p is victim else p for p in plan.placements)
    text = plan_to_yaml(dataclasses.replace(plan, placements=placements))
    found = problems(text, demo, inventory)
    line = line_of(text, f"vm_id: {victim.vm_id}")
    assert any(
        at == line and f"placement of VM {victim.name} exceeds node {victim.node}" in m for at, m in found
    )
    # capacities edited in the plan are checked against the inventory
    nodes = tuple(dataclasses.replace(n, cpu_cores=999) if n.name == victim.node else n for n in plan.nodes)
    text = plan_to_yaml(dataclasses.replace(plan, nodes=nodes))
    assert any(
        "the plan says cpu_cores 999, the inventory says" in m for _, m in problems(text, demo, inventory)
    )


def test_storage_and_addresses_are_revalidated(plan: Plan, demo: Environment) -> None:
    path = plan.paths[0]
    outside = dataclasses.replace(
        path, new_path=path.new_path.rsplit("/storage/", 1)[0] + "/storage/../../etc"
    )
    text = plan_to_yaml(dataclasses.replace(plan, paths=(outside, *plan.paths[1:])))
    assert any("lies outside storage root" in m for _, m in problems(text, demo))
    volumes = [p for p in plan.paths if p.subject.startswith("volume:")]
    same = dataclasses.replace(volumes[1], new_path=volumes[0].new_path)
    inside = dataclasses.replace(volumes[2], new_path=volumes[0].new_path + "/files/more")
    beside = dataclasses.replace(volumes[3], new_path=volumes[0].new_path + "-2")  # a sibling, not inside
    edited = {v.subject: v for v in (same, inside, beside)}
    text = plan_to_yaml(dataclasses.replace(plan, paths=tuple(edited.get(p.subject, p) for p in plan.paths)))
    shared = [(line, m) for line, m in problems(text, demo) if "each needs its own" in m]
    assert sorted(m.split(": ", 1)[0] for _, m in shared) == sorted([same.subject, inside.subject])
    assert any(f"{same.new_path} is also the path of {volumes[0].subject}" in m for _, m in shared)
    assert any(m.startswith(f"{inside.subject}: ") and "lies inside the path of" in m for _, m in shared)
    assert all(line == line_of(text, f"subject: '{m.split(': ', 1)[0]}'") for line, m in shared)
    node, pool = plan.nodes[1], plan.pools[0]
    text = plan_to_yaml(
        dataclasses.replace(
            plan,
            nodes=(
                plan.nodes[0],
                dataclasses.replace(node, root=plan.nodes[0].root + "/./"),
                *plan.nodes[2:],
            ),
            pools=(dataclasses.replace(pool, root=plan.nodes[0].root + "/pool"), *plan.pools[1:]),
        )
    )
    clashes = [m for _, m in problems(text, demo) if "each needs its own" in m]
    kept = plan.nodes[0]
    assert f"node {node.name}: {kept.root}/./ is also the root of node {kept.name}" in "".join(clashes)
    assert any(
        m.startswith(f"storage pool {pool.name}: ") and "lies inside the root of" in m for m in clashes
    )
    big = dataclasses.replace(path, size_gib=1e6)
    text = plan_to_yaml(dataclasses.replace(plan, paths=(big, *plan.paths[1:])))
    assert any("over by" in m for _, m in problems(text, demo))
    first, second = plan.addresses[0], plan.addresses[1]
    clash = dataclasses.replace(second, new=first.new)
    text = plan_to_yaml(dataclasses.replace(plan, addresses=(first, clash, *plan.addresses[2:])))
    assert any(f"address {first.new} is already used" in m for _, m in problems(text, demo))
    stray = dataclasses.replace(first, new="192.168.1.1")
    text = plan_to_yaml(dataclasses.replace(plan, addresses=(stray, *plan.addresses[1:])))
    assert any("lies outside subnet" in m for _, m in problems(text, demo))


def test_broken_yaml_and_wrong_format(plan: Plan, demo: Environment) -> None:
    text = plan_to_yaml(plan)
    found = problems(text.replace("steps:\n", "steps: [\n", 1), demo)
    assert found[0][0] > 0 and "not valid YAML" in found[0][1]
    assert any("format must be" in m for _, m in problems(text.replace(PLAN_FORMAT, "other/9"), demo))
    assert problems("- a list\n", demo) == [(1, "a plan is a YAML mapping")]


def test_find_cycle() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    assert find_cycle({"a": ["b"], "b": ["a"]}) == ["a", "b", "a"]


def test_priorities_promote_a_hard_dependency_of_a_more_important_application(
    demo: Environment, inventory: Inventory
) -> None:
    # make a critical app hard-depend on a low one: the low one is restored with the critical ones
    low = next(a for a in demo.applications if a.priority == "low")
    apps = tuple(
        dataclasses.replace(a, depends_on=((low.name, "hard"),)) if a.name == "billing" else a
        for a in demo.applications
    )
    deps = (
        *demo.dependencies,
        type(demo.dependencies[0])("application:billing", f"application:{low.name}", "hard"),
    )
    env = dataclasses.replace(demo, applications=apps, dependencies=deps)
    plan = generate_plan(env, inventory, "basic", "x")
    assert plan.step(f"application/{low.name}").phase == "applications-critical"
    assert f"application/{low.name}" in plan.step("application/billing").depends_on


def test_plan_tables_for_the_database(plan: Plan) -> None:
    from transforms.plan import plan_tables

    tables = plan_tables(plan)
    steps = tables["plan_steps"]
    assert steps.height == len(plan.steps) and set(steps["plan_sha256"]) == {plan.sha256}
    assert (
        steps.filter(steps["id"] == "ring/demo-ring-1")["depends_on"][0]
        == "director/dir-1,director/dir-2,director/dir-3,gate/ring"
    )
    assert tables["plan_adaptations"].height == len(plan.adaptations)
    assert tables["plan_placements"].height == len(plan.placements)


def test_with_the_environment_a_dropped_vm_or_a_broken_dependency_is_refused(
    plan: Plan, demo: Environment
) -> None:
    dropped = plan.placements[0]
    text = plan_to_yaml(dataclasses.replace(plan, placements=plan.placements[1:]))
    found = problems_from(text, demo)
    assert any(f"VM {dropped.name} ({dropped.component}) is placed nowhere" in m for _, m in found)
    # the phase gate is removed and the volume dependency too: billing could start before its data
    text = _edit(plan, "application/billing", depends_on=("orchestrator/orch-1",))
    found = problems_from(text, demo)
    assert any(
        line == line_of(text, "- id: application/billing")
        and "step application/billing must run after volume/billing/pgdata" in m
        for line, m in found
    )
    assert plan_from_yaml(plan_to_yaml(plan), environment=demo) == plan


def problems_from(text: str, demo: Environment) -> list[tuple[int, str]]:
    with pytest.raises(PlanError) as caught:
        plan_from_yaml(text, environment=demo)
    return caught.value.problems


def test_a_step_needs_its_hard_dependencies_not_the_previous_phase_it_waits_for(
    plan: Plan, demo: Environment
) -> None:
    needs = step_needs(plan, demo)
    steps = {s.id: s for s in plan.steps}
    assert set(needs) == set(steps)
    for step_id, needed in needs.items():
        assert needed <= set(steps[step_id].depends_on), step_id
    volume = next(s for s in plan.steps if s.id.startswith("volume/"))
    owner = f"application/{volume.id.split('/')[1]}"
    assert volume.id in needs[owner], "an application needs its volumes"
    gate = plan.step("gate/core-services")
    services = [s for s in plan.steps if s.phase == "core-services" and not s.is_gate]
    assert volume.id in gate.depends_on and not needs[gate.id], "the gate waits for the volumes"
    assert services and all(gate.id in s.depends_on for s in services), "services wait for the gate"
    assert not [s.id for s in services if needs[s.id] & {volume.id, gate.id}], "… but need neither"
    hard = [
        (f"application/{d.component_id.split(':')[1]}", f"application/{d.depends_on_id.split(':')[1]}")
        for d in demo.dependencies
        if d.strength == "hard"
        and d.component_id.startswith("application:")
        and d.depends_on_id.startswith("application:")
    ]
    assert hard and all(b in needs[a] for a, b in hard), (
        "an application needs the applications it hard-depends on"
    )


def test_the_volumes_of_an_application_restored_in_the_critical_phase_stop_the_run_when_they_fail(
    plan: Plan,
) -> None:
    phase = {s.id.split("/", 1)[1]: s.phase for s in plan.steps if s.id.startswith("application/")}
    volumes = [s for s in plan.steps if s.id.startswith("volume/")]
    assert {s.on_failure for s in volumes} == {"stop", "skip-dependents"}
    for step in volumes:
        critical = phase[step.id.split("/")[1]] == "applications-critical"
        assert (step.on_failure == "stop") == critical, step.id
