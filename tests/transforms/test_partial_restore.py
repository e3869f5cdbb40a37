"""The partial restore rule on the demo's plan: for every application, every step it needs comes with
it (closed under the needs), nothing else, each added step with a step that needs it; restored steps
are not added again."""

from __future__ import annotations

import pytest

from tests.builders import reachable, same_shaped
from transforms.documents import Environment
from transforms.plan import Plan, PlanError, generate_plan, partial_restore, plan_needs, step_needs


@pytest.fixture(scope="module")
def plan(demo: Environment) -> Plan:
    return generate_plan(demo, same_shaped(demo), "basic", "demo-20261124t0200z")


def applications(plan: Plan) -> list[str]:
    return sorted(s.id.split("/", 1)[1] for s in plan.steps if s.id.startswith("application/"))


def closure(needs: dict[str, frozenset[str]], start: str) -> set[str]:
    return reachable(needs, [start])


@pytest.mark.parametrize("from_index", [True, False], ids=["needs from the index", "needs from the plan"])
def test_each_application_comes_with_exactly_what_it_needs(plan: Plan, demo: Environment, from_index: bool):
    needs = step_needs(plan, demo) if from_index else plan_needs(plan)
    for app in applications(plan):
        partial = partial_restore(plan, [app], needs)
        assert partial.steps == closure(needs, f"application/{app}")
        for step, needer in partial.added.items():
            assert step in needs[needer] and needer in partial.steps
            assert not step.startswith((f"application/{app}", f"volume/{app}/"))
        assert partial.already_restored == ()
    kinds = {s.split("/")[0] for a in applications(plan) for s in partial_restore(plan, [a], needs).added}
    assert {"orchestrator", "director"} <= kinds, "the infrastructure the plan names is added"


def test_a_dependency_restored_before_is_not_added_nor_followed(plan: Plan, demo: Environment):
    needs = step_needs(plan, demo)
    app = next(
        a for a in applications(plan) if any(d.startswith("orchestrator/") for d in needs[f"application/{a}"])
    )
    whole = partial_restore(plan, [app], needs)
    orchestrator = next(d for d in needs[f"application/{app}"] if d.startswith("orchestrator/"))
    own_volumes = {s for s in whole.steps if s.startswith(f"volume/{app}/")}
    again = partial_restore(plan, [app], needs, restored={orchestrator, *own_volumes})
    assert orchestrator in again.already_restored and orchestrator not in again.steps
    assert own_volumes <= again.steps, "the chosen application's own volumes always run"
    only_via_orchestrator = closure(needs, orchestrator) - closure(
        {k: v - {orchestrator} for k, v in needs.items()}, f"application/{app}"
    )
    assert not only_via_orchestrator & again.steps


def test_an_unknown_application_is_refused_naming_the_known_ones(plan: Plan):
    with pytest.raises(PlanError, match=r"unknown application\(s\) nope; the plan has .*billing"):
        partial_restore(plan, ["nope"])
