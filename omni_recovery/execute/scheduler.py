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

import heapq
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Generic, Protocol, TypeVar

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
    graph = _Graph(steps)
    outcomes: dict[str, T] = {}
    running: dict[Future[T], S] = {}
    failure: Exception | None = None

    def record(step: S, outcome: T) -> None:
        outcomes[step.id] = outcome
        ended(step, outcome)
        graph.ended(step.id)

    pool = ThreadPoolExecutor(parallel, thread_name_prefix="omni-step")
    try:
        while failure is None or running:
            while failure is None and graph.ready and len(running) < parallel:
                step = graph.next_ready()
                try:
                    outcome = settled(step)
                except Exception as exc:
                    failure = exc
                    break
                if outcome is None:
                    running[pool.submit(run, step)] = step
                else:
                    record(step, outcome)  # settled steps take no slot: only running ones count
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                step = running.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:
                    failure = failure or exc
                    continue
                record(step, outcome)
    except BaseException:
        cancel()  # Ctrl-C, or the scheduler's own failure: the running steps stop at their next read
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    if failure is not None:
        raise failure
    waiting = [s.id for s in steps if s.id not in outcomes]
    if waiting:
        raise RecoveryError(f"steps wait on each other: {', '.join(waiting[:5])}")
    return outcomes


class _Graph(Generic[S]):
    """The steps' dependencies among themselves, counted once: each step's own are looked at when
    the graph is built, so the scheduler's work grows with the steps and their dependencies."""

    def __init__(self, steps: Sequence[S]) -> None:
        ids = {s.id for s in steps}
        self._missing: dict[str, int] = {}  # step id → its dependencies (among `steps`) not yet ended
        self._dependents: dict[str, list[tuple[int, S]]] = defaultdict(list)
        self.ready: list[tuple[int, S]] = []  # a heap by plan order
        for index, step in enumerate(steps):
            depends_on = {d for d in step.depends_on if d in ids}
            self._missing[step.id] = len(depends_on)
            for dependency in depends_on:
                self._dependents[dependency].append((index, step))
            if not depends_on:
                self.ready.append((index, step))
        heapq.heapify(self.ready)

    def next_ready(self) -> S:
        """The first ready step in plan order."""
        return heapq.heappop(self.ready)[1]

    def ended(self, step_id: str) -> None:
        """`step_id` has ended: the steps waiting only on it become ready."""
        for index, dependent in self._dependents.pop(step_id, []):
            self._missing[dependent.id] -= 1
            if self._missing[dependent.id] == 0:
                heapq.heappush(self.ready, (index, dependent))
