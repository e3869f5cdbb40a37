"""Which steps of a plan a run (or one partition of the restore assets) takes on.

A whole restore takes every step. A partial restore (`--applications`, or a backfill of some
application partitions in the Dagster UI) takes the chosen applications, the applications they
depend on hard, their volumes, and the report, with the gate step of each phase they are in (so
they still run phase by phase). An unknown application is refused, naming those the plan has.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from omni_recovery.execute.options import RecoveryRefused
from transforms.plan import Plan, Step, partial_restore

# The kinds of component a plan step of the same name restores (`volume:a` by `volume/a`).
_KINDS_WITH_STEPS = ("director", "orchestrator", "service", "volume", "application")


def select_steps(
    plan: Plan,
    applications: tuple[str, ...],
    needs: Mapping[str, frozenset[str]],
    restored_before: Iterable[str],
) -> list[Step]:
    """All steps, or for `applications` the chosen applications and every hard dependency the plan
    names for them (transforms.plan.partial) but those restored and verified before, and the report;
    with the gates of their phases."""
    if not applications:
        return list(plan.steps)
    _application_closure(plan, applications)  # unknown applications refused
    wanted = partial_restore(plan, applications, needs, set(restored_before)).steps | {"report/recovery"}
    phases = {s.phase for s in plan.steps if s.id in wanted}
    return [s for s in plan.steps if s.id in wanted or (s.is_gate and s.phase in phases)]


def applications_with_dependencies(plan: Plan, applications: Iterable[str]) -> list[str]:
    return sorted(
        s.split("/", 1)[1] for s in _application_closure(plan, applications) if s.startswith("application/")
    )


def in_applications(step: Step, applications: set[str] | None) -> bool:
    """True unless `applications` is given and the step is another application's (or its volume's)."""
    if applications is None or not step.id.startswith(("application/", "volume/")):
        return True
    return step.id.split("/")[1] in applications


def step_of_component(component: str | None) -> str | None:
    """The id of the step that restores `component` (`volume:a` → `volume/a`), if a step does."""
    if not component or ":" not in component:
        return None
    kind, name = component.split(":", 1)
    return f"{kind}/{name}" if kind in _KINDS_WITH_STEPS else None


def _application_closure(plan: Plan, applications: Iterable[str]) -> set[str]:
    """The chosen applications' steps, their hard application dependencies' steps, and their volumes."""
    steps = {s.id: s for s in plan.steps}
    unknown = [a for a in applications if f"application/{a}" not in steps]
    if unknown:
        raise RecoveryRefused(
            f"unknown application(s) {', '.join(unknown)}; the plan has "
            + ", ".join(sorted(s.split("/", 1)[1] for s in steps if s.startswith("application/")))
        )
    wanted: set[str] = set()
    todo = [f"application/{a}" for a in applications]
    while todo:
        step_id = todo.pop()
        if step_id in wanted:
            continue
        wanted.add(step_id)
        todo.extend(d for d in steps[step_id].depends_on if d.startswith(("application/", "volume/")))
    return wanted
