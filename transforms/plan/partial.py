"""A partial restore: the steps that restoring some applications needs, and why each was added.

The chosen applications' steps come with every step they need, directly or not: their volumes, the
applications they depend on hard, and the Orchestrators, Directors, rings, clusters and storage the
plan names as their hard dependencies. What a step needs is its `depends_on` less what it only waits
for in a whole restore (its phase's gate step, or in a plan without gates the previous phase's last
steps), unless the caller gives the needs from the environment's index (`step_needs`), which also
keeps such a step when it is a hard dependency. A dependency restored and verified before
(`restored`: succeeded in a finished run of the same plan) is not added again; it is listed as
already restored, and what it needs is not followed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field

from transforms.plan.model import Plan, PlanError
from transforms.plan.wiring import waited_for


@dataclass(frozen=True)
class PartialRestore:
    steps: frozenset[str]  # every step to run, the chosen applications' own included
    added: dict[str, str] = field(default_factory=dict)  # a hard dependency added → which step needs it
    already_restored: tuple[str, ...] = ()  # hard dependencies not added: restored and verified before

    def added_lines(self) -> list[str]:
        """One line per added step, saying why (for the command line and the report)."""
        return [f"{step} (needed by {why})" for step, why in sorted(self.added.items())]


def plan_needs(plan: Plan) -> dict[str, frozenset[str]]:
    """step → the steps it needs, from the plan alone: its depends_on less what it only waits for."""
    waits = waited_for(plan.steps)
    return {s.id: frozenset(d for d in s.depends_on if d not in waits[s.id]) for s in plan.steps}


def partial_restore(
    plan: Plan,
    applications: Iterable[str],
    needs: Mapping[str, frozenset[str]] | None = None,
    restored: Set[str] = frozenset(),
) -> PartialRestore:
    """The steps restoring `applications` takes; PlanError naming an application the plan lacks."""
    known = {s.id for s in plan.steps}
    chosen = [f"application/{a}" for a in applications]
    unknown = [c.split("/", 1)[1] for c in chosen if c not in known]
    if unknown:
        apps = sorted(s.split("/", 1)[1] for s in known if s.startswith("application/"))
        raise PlanError([(0, f"unknown application(s) {', '.join(unknown)}; the plan has {', '.join(apps)}")])
    needs = needs if needs is not None else plan_needs(plan)
    own = {c.split("/", 1)[1] for c in chosen}
    steps: set[str] = set()
    added: dict[str, str] = {}
    skipped: set[str] = set()
    todo = [(c, "") for c in chosen]
    while todo:
        step_id, needer = todo.pop()
        if step_id in steps:
            continue
        added_for = needer and not _own(step_id, own)
        if added_for and step_id in restored:
            skipped.add(step_id)
            continue
        steps.add(step_id)
        if added_for:
            added.setdefault(step_id, needer)
        todo.extend((d, step_id) for d in sorted(needs.get(step_id, frozenset())))
    return PartialRestore(frozenset(steps), added, tuple(sorted(skipped - steps)))


def _own(step_id: str, applications: set[str]) -> bool:
    """A chosen application's own step or one of its volumes."""
    kind, _, rest = step_id.partition("/")
    return kind in ("application", "volume") and rest.split("/")[0] in applications
