"""run_in_order: dependency order, at most `parallel` steps at once, settled steps, and stopping."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass

import pytest

from omni_recovery.errors import RecoveryError
from omni_recovery.execute.scheduler import run_in_order


@dataclass(frozen=True)
class Job:
    id: str
    depends_on: tuple[str, ...] = ()


class Recorder:
    """Runs jobs, noting the order of starts and ends and the most running at once."""

    def __init__(self, hold: threading.Barrier | None = None) -> None:
        self.lock = threading.Lock()
        self.events: list[str] = []
        self.running = self.most = 0
        self.hold = hold

    def __call__(self, job: Job) -> str:
        with self.lock:
            self.events.append(f"start {job.id}")
            self.running += 1
            self.most = max(self.most, self.running)
        if self.hold is not None:
            self.hold.wait(timeout=60)  # raises BrokenBarrierError unless `parties` jobs run at once
        with self.lock:
            self.running -= 1
            self.events.append(f"end {job.id}")
        return f"ran {job.id}"


def test_each_step_starts_after_the_steps_it_depends_on_ended() -> None:
    jobs = [Job("a"), Job("b", ("a",)), Job("c", ("a",)), Job("d", ("b", "c", "outside"))]
    recorder = Recorder()
    outcomes = run_in_order(jobs, 2, recorder)
    assert outcomes == {j.id: f"ran {j.id}" for j in jobs}
    at = {event: i for i, event in enumerate(recorder.events)}
    for job in jobs:
        for dep in job.depends_on:
            if dep != "outside":  # a dependency outside the given steps has ended before
                assert at[f"end {dep}"] < at[f"start {job.id}"], (dep, job.id)


def test_independent_steps_run_together_up_to_parallel() -> None:
    jobs = [Job(f"v{i}") for i in range(4)]
    together = Recorder(threading.Barrier(2))
    run_in_order(jobs, 2, together)  # would break the barrier unless two run at once
    assert together.most == 2
    alone = Recorder()
    run_in_order(jobs, 1, alone)
    assert alone.most == 1
    assert alone.events == [e for j in jobs for e in (f"start {j.id}", f"end {j.id}")], "plan order"


def test_settled_steps_do_not_run_and_every_outcome_is_handed_back_in_order() -> None:
    jobs = [Job("a"), Job("b", ("a",)), Job("c", ("b",))]
    recorder = Recorder()
    ended: list[tuple[str, str]] = []
    outcomes = run_in_order(
        jobs,
        2,
        recorder,
        settled=lambda job: "skipped" if job.id == "b" else None,
        ended=lambda job, outcome: ended.append((job.id, outcome)),
    )
    assert outcomes == {"a": "ran a", "b": "skipped", "c": "ran c"}
    assert ended == [("a", "ran a"), ("b", "skipped"), ("c", "ran c")]
    assert "start b" not in recorder.events


def failure_noted(scheduler_thread: int) -> bool:
    """Whether run_in_order, running in that thread, has taken note of a failed step (its `failure`)."""
    frame = sys._current_frames().get(scheduler_thread)
    while frame is not None and frame.f_code is not run_in_order.__code__:
        frame = frame.f_back
    return frame is not None and frame.f_locals.get("failure") is not None


def test_a_failing_step_lets_the_running_ones_end_and_starts_no_other() -> None:
    started: list[str] = []
    scheduler = threading.get_ident()

    def run(job: Job) -> str:
        started.append(job.id)
        if job.id == "bad":
            raise RecoveryError("bad failed")
        # Ends only once the scheduler knows of the failure: ending before, it would free its slot
        # for later-1 as it should, however loaded the machine.
        deadline = time.monotonic() + 120
        while not failure_noted(scheduler):
            assert time.monotonic() < deadline, "the scheduler never took note of the failure"
            time.sleep(0.005)
        return "ok"

    jobs = [Job("slow"), Job("bad"), Job("later-1"), Job("later-2", ("slow",))]
    with pytest.raises(RecoveryError, match="bad failed"):
        run_in_order(jobs, 2, run)
    assert sorted(started) == ["bad", "slow"]


def test_steps_that_wait_on_each_other_are_refused() -> None:
    with pytest.raises(RecoveryError, match="wait on each other: a, b"):
        run_in_order([Job("a", ("b",)), Job("b", ("a",))], 2, Recorder())


def test_settled_steps_take_no_slot_from_a_ready_step() -> None:
    jobs = [Job("r1"), Job("s1"), Job("t1")]
    recorder = Recorder(threading.Barrier(2))  # r1 and t1 must run at the same time
    outcomes = run_in_order(jobs, 2, recorder, settled=lambda job: "done before" if job.id == "s1" else None)
    assert outcomes["s1"] == "done before" and recorder.most == 2


def test_a_step_that_cannot_be_settled_stops_the_run_like_a_failure() -> None:
    def settle(job: Job) -> str | None:
        if job.id == "blocked":
            raise RecoveryError("blocked needs what failed")
        return None

    recorder = Recorder()
    jobs = [Job("first"), Job("blocked", ("first",)), Job("after", ("blocked",)), Job("other", ("first",))]
    with pytest.raises(RecoveryError, match="blocked needs what failed"):
        run_in_order(jobs, 1, recorder, settled=settle)
    assert recorder.events == ["start first", "end first"]


def test_an_interrupt_cancels_the_running_steps_and_is_raised_once_they_stopped() -> None:
    cancelled = threading.Event()

    def run(job: Job) -> str:
        if job.id == "long":
            assert cancelled.wait(timeout=120), "never cancelled"
            return "stopped early"
        return "ok"

    def interrupt(job: Job, outcome: str) -> None:
        if job.id == "short":
            raise KeyboardInterrupt  # as Ctrl-C arrives in the calling thread

    with pytest.raises(KeyboardInterrupt):
        run_in_order([Job("long"), Job("short"), Job("never")], 2, run, ended=interrupt, cancel=cancelled.set)
    assert cancelled.is_set()


class CountedJob:
    """A job that counts how often the scheduler asks for its dependencies."""

    asked = 0

    def __init__(self, id: str, depends_on: tuple[str, ...] = ()) -> None:
        self.id, self._depends_on = id, depends_on

    @property
    def depends_on(self) -> tuple[str, ...]:
        CountedJob.asked += 1
        return self._depends_on


@pytest.mark.parametrize("volumes", [10, 3000])
def test_the_scheduler_looks_at_each_step_s_dependencies_once_however_many_steps(volumes: int) -> None:
    """A plan's shape (infrastructure, many independent volumes, steps after them all), as large as
    200 nodes' volumes: the scheduling work grows with the steps, not with their square."""
    names = [f"volume-{i}" for i in range(volumes)]
    jobs = [
        CountedJob("storage"),
        *(CountedJob(n, ("storage",)) for n in names),
        CountedJob("verify", tuple(names)),
    ]
    CountedJob.asked = 0
    outcomes = run_in_order(jobs, 2, lambda job: job.id)
    assert outcomes == {j.id: j.id for j in jobs}
    assert CountedJob.asked == len(jobs)
