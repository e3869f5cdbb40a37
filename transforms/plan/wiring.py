"""The plan's steps wired into a DAG: hard dependencies first, phases in order.

`wire` gives every step its hard dependencies (from the index) and opens every non-empty phase but
the first with a gate step (`gate/<phase>`) that depends on the last steps of the previous non-empty
phase; the phase's steps depend on the gate. So phases run in order with one edge per step and per
sink, not one per pair of them (that grew with the square of the applications). `phase_gates` says
what each phase waits for; `step_needs` which steps a step needs restored (as opposed to waits for).
Plans written before gates (each step depending on every sink of the previous phase) read the same;
`without_gates` turns a plan into that form.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import replace

from transforms.documents import Environment
from transforms.plan.model import GATE, PHASES, Plan, Step


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


def waited_for(steps: Iterable[Step]) -> dict[str, set[str]]:
    """step → what it only waits for: its phase's gate step, or (in a plan without gates) the
    previous phase's sinks; a gate step waits for all it depends on."""
    steps = list(steps)
    gates = phase_gates(steps)
    gate_ids = {s.id for s in steps if s.is_gate}
    return {s.id: set(s.depends_on) if s.is_gate else gates[s.phase] | gate_ids for s in steps}


def step_needs(plan: Plan, env: Environment) -> dict[str, frozenset[str]]:
    """step → the steps it needs, as opposed to waits for: its depends_on less what it only waits
    for (`waited_for`), unless that is also a hard dependency. A step whose need failed cannot do
    its work (on_failure skip-dependents skips it); one whose gate failed can."""
    hard = _hard_dependencies(env, {s.id for s in plan.steps})
    waits = waited_for(plan.steps)
    return {
        s.id: frozenset(d for d in s.depends_on if d not in waits[s.id] or d in hard.get(s.id, set()))
        for s in plan.steps
    }


def wire(raw: list[Step], env: Environment) -> tuple[Step, ...]:
    """Add hard dependencies (from the index) to every step, and a gate step before every non-empty
    phase but the first: the gate depends on the previous phase's sinks, the phase's steps on it."""
    hard = _hard_dependencies(env, {s.id for s in raw})
    by_phase = _by_phase(raw)
    result: list[Step] = []
    previous: tuple[str, set[str]] | None = None  # the previous non-empty phase and its sinks
    for phase in PHASES:
        steps = by_phase.get(phase, [])
        if not steps:
            continue
        gate = [gate_step(phase, *previous)] if previous else []
        wired = [
            replace(s, depends_on=tuple(sorted({*s.depends_on, *hard.get(s.id, ()), *(g.id for g in gate)})))
            for s in steps
        ]
        previous = (phase, _sinks(wired))
        result.extend(gate + _topological(wired))
    return tuple(result)


def gate_step(phase: str, previous_phase: str, sinks: Collection[str]) -> Step:
    """The gate opening `phase`: done once every sink of `previous_phase` has ended."""
    return Step(
        id=f"{GATE}/{phase}",
        phase=phase,
        action=f"mark the end of phase {previous_phase}: every step of phase {phase} waits for this one",
        component=None,
        depends_on=tuple(sorted(sinks)),
        wait=f"every last step of phase {previous_phase} has ended",
        timeout_s=60,
        retries=0,
        on_failure="continue",
        fallback="nothing to redo: a gate does no work and runs on the control node",
    )


def without_gates(plan: Plan) -> Plan:
    """`plan` as plan-generate wrote it before gate steps: each step depending on every last step of
    the previous phase (what its gate depended on) instead of on its phase's gate."""
    gates = {s.id: s.depends_on for s in plan.steps if s.is_gate}
    steps = tuple(
        replace(s, depends_on=tuple(sorted({d for g in s.depends_on for d in gates.get(g, (g,))})))
        for s in plan.steps
        if not s.is_gate
    )
    return replace(plan, steps=steps)


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
