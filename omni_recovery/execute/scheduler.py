"""Running plan steps in dependency order, several at once.

`run_in_order` starts each step once every step it depends on (among those given) has ended, at
most `parallel` at a time, taking ready steps in the order given (plan order). A step may be
settled without running (already done, or blocked by a failure): `settled` says so when the step
becomes ready. Outcomes are handed back to the calling thread as steps end (`ended`), so what
follows from one (which steps it blocks) is decided before the next ready step is looked at.
When a step (or `settled`) raises, no further step starts, those running end, and the first
exception is raised. On an interrupt (Ctrl-C) `cancel` is called so that running steps stop early,
and the interrupt is raised once they have.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Protocol, TypeVar

from omni_recovery.errors import RecoveryError


class Schedulable(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def depends_on(self) -> tuple[str, ...]: ...


S = TypeVar("S", bound=Schedulable)
T = TypeVar("T")


def run_in_order(
    steps: Sequence[S],
    parallel: int,
    run: Callable[[S], T],
    settled: Callable[[S], T | None] = lambda step: None,
    ended: Callable[[S, T], None] = lambda step, outcome: None,
    cancel: Callable[[], None] = lambda: None,
) -> dict[str, T]:
    """Every step's outcome by id; see the module documentation."""
    if parallel < 1:
        raise ValueError("parallel must be at least 1")
    ids = {s.id for s in steps}
    outcomes: dict[str, T] = {}
    waiting = list(steps)
    running: dict[Future[T], S] = {}
    failure: Exception | None = None
    pool = ThreadPoolExecutor(parallel, thread_name_prefix="omni-step")
    try:
        while waiting or running:
            progressed = False
            for step in [s for s in waiting if all(d in outcomes or d not in ids for d in s.depends_on)]:
                if len(running) >= parallel:
                    break  # settled steps take no slot: only running ones count
                waiting.remove(step)
                progressed = True
                try:
                    outcome = settled(step)
                except Exception as exc:
                    failure = failure or exc
                    waiting.clear()
                    break
                if outcome is None:
                    running[pool.submit(run, step)] = step
                else:
                    outcomes[step.id] = outcome
                    ended(step, outcome)
            if progressed and len(running) < parallel:
                continue  # settling a step may have made others ready
            if not running:
                if waiting:
                    raise RecoveryError(f"steps wait on each other: {', '.join(s.id for s in waiting[:5])}")
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                step = running.pop(future)
                try:
                    outcomes[step.id] = outcome = future.result()
                except Exception as exc:
                    failure = failure or exc
                    waiting.clear()
                    continue
                ended(step, outcome)
    except BaseException:
        cancel()  # Ctrl-C, or the scheduler's own failure: the running steps stop at their next read
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    if failure is not None:
        raise failure
    return outcomes
