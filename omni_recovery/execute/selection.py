"""Which steps of a plan a run (or one partition of the restore assets) takes on.

A whole restore takes every step. A partial restore (`--applications`, or a backfill of some
application partitions in the Dagster UI) takes what `transforms.plan.partial_restore` names: the
chosen applications, every step they need (their volumes, the applications, Orchestrators and Directors
they depend on hard) but those restored and verified before, and the report, with the gate step of each
phase they are in (so they still run phase by phase). This is the one rule: the runner's phase filter,
the gate, the partitions added and the metadata all derive from it. An unknown application is refused,
naming those the plan has.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set

from omni_recovery.execute.options import RecoveryRefused
from transforms.plan import PartialRestore, Plan, PlanError, Step, partial_restore

# The kinds of component a plan step of the same name restores (`volume:a` by `volume/a`).
_KINDS_WITH_STEPS = ("director", "orchestrator", "service", "volume", "application")
_APPLICATION_KINDS = ("application/", "volume/")  # steps of one application: `volume/<app>/<name>`


def partial_selection(
    plan: Plan,
    applications: Iterable[str],
    needs: Mapping[str, frozenset[str]] | None = None,
    restored_before: Set[str] = frozenset(),
) -> PartialRestore:
    """The partial restore of `applications` (transforms.plan.partial); RecoveryRefused naming an
    application the plan lacks, as every refusal of the gate is."""
    try:
        return partial_restore(plan, applications, needs, restored_before)
    except PlanError as exc:
        raise RecoveryRefused("; ".join(message for _, message in exc.problems)) from exc


def applications_of(partial: PartialRestore) -> list[str]:
    """The applications a partial restore writes to: the chosen ones and those added for them."""
    return sorted({s.split("/")[1] for s in partial.steps if s.startswith(_APPLICATION_KINDS)})


def applications_with_dependencies(
    plan: Plan,
    applications: Iterable[str],
    needs: Mapping[str, frozenset[str]] | None = None,
    restored_before: Set[str] = frozenset(),
) -> list[str]:
    """`applications` and the applications their partial restore adds (`partial_selection`)."""
    return applications_of(partial_selection(plan, applications, needs, restored_before))


def in_partial(step: Step, partial: PartialRestore | None) -> bool:
    """True unless the step is an application's (or its volume's) that the partial restore leaves out."""
    return partial is None or not step.id.startswith(_APPLICATION_KINDS) or step.id in partial.steps


def in_applications(step: Step, applications: set[str] | None) -> bool:
    """True unless `applications` is given and the step is another application's (or its volume's)."""
    if applications is None or not step.id.startswith(_APPLICATION_KINDS):
        return True
    return step.id.split("/")[1] in applications


def step_of_component(component: str | None) -> str | None:
    """The id of the step that restores `component` (`volume:a` → `volume/a`), if a step does."""
    if not component or ":" not in component:
        return None
    kind, name = component.split(":", 1)
    return f"{kind}/{name}" if kind in _KINDS_WITH_STEPS else None
