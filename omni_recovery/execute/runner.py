"""The runner: a recovery's steps run as the plan says, several at once, each tried and retried.

Up to the parallel factor of steps run at once (execute/scheduler.py), each once the steps it
depends on have ended; among the ready steps of a phase, those with the most stored bytes to copy
start first (otherwise plan order), so a large volume does not start last and keep the run waiting
on it alone. Each step is tried 1 + `retries` times (a retried restore skips the files it already
verified), then its `on_failure` applies: stop ends the run, skip-dependents skips the steps that
need it (and, for a failure in the infrastructure phases, everything after it), continue goes on.
Steps that succeeded earlier in the run are skipped, but for verification and report, which judge
the whole run. A run stopped by an error or an interrupt is recorded as interrupted and left open.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from omni_recovery.errors import DatabaseError, Interrupted, RecoveryError
from omni_recovery.execute.context import RunContext
from omni_recovery.execute.options import StepOutcome
from omni_recovery.execute.scheduler import run_in_order
from omni_recovery.execute.selection import in_applications
from omni_recovery.execute.steps import run_step
from omni_recovery.execute.tracking import FAILED, SKIPPED
from transforms.plan import PHASE_INDEX, PHASES, Step

FINAL_PHASE = PHASES[-1]  # the post-recovery backup
VOLUMES = PHASE_INDEX["volumes"]  # the phases before it are the infrastructure everything builds on
# Steps that judge the whole run: a resumed run does them again even when they succeeded before.
SUMMARY_PHASES = ("verification", "report")


def run_phases(
    context: RunContext, phases: Iterable[str], applications: Iterable[str] | None = None
) -> dict[str, StepOutcome]:
    """Run the selected steps of these phases in plan order; `applications` narrows the volume and
    application steps to those applications (a partition of the restore assets)."""
    wanted_phases = set(phases)
    # The applications a partial restore adds for hard dependencies come with the partition's, from
    # the CLI and from UI backfills alike (RunContext.partial: the one rule).
    apps = set(applications) | set(context.added_applications) if applications is not None else None
    steps = [s for s in context.selected_steps() if s.phase in wanted_phases and in_applications(s, apps)]
    try:
        return run_steps(context, steps)
    except BaseException as exc:
        with contextlib.suppress(DatabaseError):  # a database that went away cannot record it
            context.tracker.interrupt(_why_stopped(exc))
        raise


def _why_stopped(exc: BaseException) -> str:
    if isinstance(exc, RecoveryError):
        return str(exc)
    if isinstance(exc, Exception):
        return f"stopped by an unexpected error: {exc!r}"
    return "interrupted by the operator"  # Ctrl-C: KeyboardInterrupt, or Dagster's interrupt error


def run_steps(context: RunContext, steps: Iterable[Step]) -> dict[str, StepOutcome]:
    """Run `steps` as the plan says: up to `parallel` at once, each once the steps it depends on
    (among these) have ended, in plan order but for the ready steps of a phase, largest copy
    first; each tried 1 + `retries` times, then its `on_failure`.

    stop: no further step starts, those running end, and the run stops (RecoveryError; the run
    stays open for a resume). skip-dependents: the steps that need it, directly or not
    (`step_needs`: not those that only wait for its phase to end), are recorded as skipped and
    the others go on. continue: everything goes on. Failed and skipped steps are run again by
    the next execute-plan of the plan; until then `finish` refuses to close the run.
    """
    steps = sorted(steps, key=lambda s: (PHASE_INDEX[s.phase], -_copied_bytes(context, s)))
    _load_shared(context, steps)
    done = context.tracker.succeeded_steps()
    blocking = _blocking_failures(context, exclude={s.id for s in steps})

    def ended(step: Step, outcome: StepOutcome) -> None:
        if outcome.status == FAILED and step.on_failure == "skip-dependents":
            blocking[step.id] = step.id

    context.cancel.clear()
    return run_in_order(
        steps,
        context.options.parallel,
        lambda s: _claimed_attempt(context, s),
        lambda s: _settled(context, s, done, blocking),
        ended,
        cancel=context.cancel.set,
    )


def _settled(context: RunContext, step: Step, done: set[str], blocking: dict[str, str]) -> StepOutcome | None:
    """The outcome of a step that is not to run (done before, or a step it needs failed), else None."""
    if step.id in done and step.phase not in SUMMARY_PHASES:
        return StepOutcome(SKIPPED, detail={"reason": "already succeeded in this run"})
    # What a step needs blocks it; a failure in the infrastructure phases (Directors to storage)
    # blocks everything after it, which all builds on that infrastructure.
    cause = next(
        (
            blocking[d]
            for d in step.depends_on
            if d in blocking and (d in context.needs[step.id] or _infrastructure(context, blocking[d]))
        ),
        None,
    )
    if cause is None:
        return None
    detail = {"reason": f"{cause} failed and its on_failure is skip-dependents", "blocked_by": cause}
    context.tracker.step_skipped(step.id, step.phase, step.component, detail)
    blocking[step.id] = cause
    if step.on_failure == "stop":
        raise _stop(step, f"cannot run: it needs {cause}, which failed, and its own on_failure is stop")
    return StepOutcome(SKIPPED, detail=detail)


def _infrastructure(context: RunContext, step_id: str) -> bool:
    phase = context.phase_of.get(step_id)
    return phase is not None and PHASE_INDEX[phase] < VOLUMES


def _copied_bytes(context: RunContext, step: Step) -> int:
    """The bytes a step copies from the set."""
    return sum(context.file_bytes(f) for f in context.files_by_step.get(step.id, []) if f.source)


def _load_shared(context: RunContext, steps: list[Step]) -> None:
    """Load what steps share before they run in threads (cached_property guards nothing since 3.12)."""
    _ = context.layout, context.files_by_step, context.entries_by_env_path, context.roots, context.needs
    _ = context.phase_of, context.target_of_source, context.added_applications
    for reader in context.readers:
        _ = reader.listing
    if any(s.id.startswith("director/") for s in steps):
        _ = context.certificates


def _claimed_attempt(context: RunContext, step: Step) -> StepOutcome:
    """The step's attempts while this process holds it (not at all if it succeeded meanwhile)."""
    with context.claimed(step) as to_run:
        if not to_run:
            return StepOutcome(SKIPPED, detail={"reason": "already succeeded in this run"})
        return _attempt(context, step)


def _attempt(context: RunContext, step: Step) -> StepOutcome:
    """The step tried up to 1 + step.retries times (files verified by a failed try are not redone)."""
    with context.tracker.step_connection():
        return _tried(context, step)


def _tried(context: RunContext, step: Step) -> StepOutcome:
    tries = 1 + max(0, step.retries)
    tracker = context.tracker
    for attempt in range(1, tries + 1):
        if context.cancel.is_set():
            raise Interrupted(f"step {step.id} interrupted")
        tracker.step_started(step.id, step.phase, step.component, context.worker)
        try:
            outcome = run_step(context, step)
        except RecoveryError as exc:
            error = exc
            detail = {"error": str(exc), "attempt": attempt, "on_failure": step.on_failure}
            tracker.step_finished(step.id, FAILED, 0, {**detail, "fallback": step.fallback})
            continue
        tracker.step_finished(step.id, outcome.status, outcome.bytes_written, outcome.detail)
        return outcome
    if step.on_failure == "stop":
        raise _stop(step, f"failed {tries} time(s): {error} — its on_failure is stop") from error
    return StepOutcome(FAILED, 0, {"error": str(error), "attempts": tries, "on_failure": step.on_failure})


def _blocking_failures(context: RunContext, exclude: set[str]) -> dict[str, str]:
    """step → the failed skip-dependents step behind it, for this run's steps not in `exclude`."""
    blocking: dict[str, str] = {}
    for step_id, (status, detail) in context.tracker.unsuccessful_steps().items():
        if step_id in exclude:
            continue  # about to run again
        if status == FAILED and detail.get("on_failure") == "skip-dependents":
            blocking[step_id] = step_id
        elif status == SKIPPED and "blocked_by" in detail:
            blocking[step_id] = str(detail["blocked_by"])
    return blocking


def _stop(step: Step, why: str) -> RecoveryError:
    """The error that stops the run at `step`, with what the plan says to do about it."""
    return RecoveryError(
        f"step {step.id} {why}, so the run stops here. Fallback: {step.fallback}. "
        "Run execute-plan again to resume"
    )
