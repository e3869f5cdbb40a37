"""The plan's steps wired into a DAG: hard dependencies first, phases in order.

`wire` gives every step its hard dependencies (from the index) and the last steps of the previous
non-empty phase, so phases run in order and a hard dependency always runs before its dependent.
`phase_gates` says what each phase waits for; `step_needs` which steps a step needs restored
(as opposed to waits for).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import replace

from transforms.documents import Environment
from transforms.plan.model import PHASES, Plan, Step


def _step_of(component: str) -> str | None:
    kind, _, name = component.partition(":")
    return (
        f"{kind}/{name}" if kind in ("director", "orchestrator", "service", "application", "volume") else None
    )


def _hard_dependencies(env: Environment, ids: Collection[str]) -> dict[str, set[str]]:
    """step → the steps of its component's hard dependencies (from the index), among `ids`."""
    hard: dict[str, set[str]] = {}
    for dep in env.dependencies:
        if dep.strength != "hard":
            continue
        a, b = _step_of(dep.component_id), _step_of(dep.depends_on_id)
        if a is not None and b is not None and a in ids and b in ids and a != b:
            hard.setdefault(a, set()).add(b)
    return hard


def _by_phase(steps: Iterable[Step]) -> dict[str, list[Step]]:
    by_phase: dict[str, list[Step]] = {}
    for s in steps:
        by_phase.setdefault(s.phase, []).append(s)
    return by_phase


def _sinks(phase_steps: list[Step]) -> set[str]:
    """The steps of one phase that no other step of it depends on: the next phase's gate."""
    needed = {d for s in phase_steps for d in s.depends_on}
    return {s.id for s in phase_steps if s.id not in needed}


def phase_gates(steps: Iterable[Step]) -> dict[str, set[str]]:
    """phase → the sinks of the previous non-empty phase (what every step of the phase waits for)."""
    by_phase = _by_phase(steps)
    gates: dict[str, set[str]] = {}
    previous_sinks: set[str] = set()
    for phase in PHASES:
        gates[phase] = previous_sinks
        if phase in by_phase:
            previous_sinks = _sinks(by_phase[phase])
    return gates


def step_needs(plan: Plan, env: Environment) -> dict[str, frozenset[str]]:
    """step → the steps it needs, as opposed to waits for: its depends_on less the previous phase's
    gate, unless a gate step is also a hard dependency. A step whose need failed cannot do its work
    (on_failure skip-dependents skips it); one whose gate step failed can."""
    hard = _hard_dependencies(env, {s.id for s in plan.steps})
    gates = phase_gates(plan.steps)
    return {
        s.id: frozenset(d for d in s.depends_on if d not in gates[s.phase] or d in hard.get(s.id, set()))
        for s in plan.steps
    }


def wire(raw: list[Step], env: Environment) -> tuple[Step, ...]:
    """Add hard dependencies (from the index) and the gate of the previous non-empty phase to every step."""
    hard = _hard_dependencies(env, {s.id for s in raw})
    by_phase = _by_phase(raw)
    result: list[Step] = []
    previous_sinks: set[str] = set()
    for phase in PHASES:
        steps = by_phase.get(phase, [])
        if not steps:
            continue
        wired = []
        for s in steps:
            deps = set(s.depends_on) | hard.get(s.id, set()) | previous_sinks
            wired.append(replace(s, depends_on=tuple(sorted(deps))))
        previous_sinks = _sinks(wired)
        result.extend(_topological(wired))
    return tuple(result)


def _topological(steps: list[Step]) -> list[Step]:
    """`steps` (one phase) reordered so every step comes after the steps it depends on, else stable."""
    pending = list(steps)
    done: set[str] = set()
    ids = {s.id for s in steps}
    ordered: list[Step] = []
    while pending:
        ready = next((s for s in pending if all(d in done or d not in ids for d in s.depends_on)), pending[0])
        pending.remove(ready)
        done.add(ready.id)
        ordered.append(ready)
    return ordered
