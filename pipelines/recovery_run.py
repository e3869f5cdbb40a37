"""The one way a recovery run is built, for `execute-plan` and `deploy-directors` as for a restore
launched from the Dagster UI.

`opened_recovery` makes the run's context (omni_recovery/execute/context.py) from the settings of
the workspace and the options (the plan, and where its set and inventory are when not recorded
beside it), with the report stage's writer for its report step; passes the gate
(omni_recovery/execute/gate.py: the set's deep validation on record, the plan re-validated, the
run's lock, the passphrase, the applications), so that a run that cannot work is refused with its
reason before anything is written; marks failed the Dagster runs an earlier process left unfinished
when it died; and closes the context (ISOs, the run's lock) on exit. `RestoreSession` is what the
restore assets get as their `recovery` resource: the context's phases run by the runner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from dagster import DagsterInstance

from omni_recovery.db.schema import init_database
from omni_recovery.db.server import database_url
from omni_recovery.execute.context import RunContext
from omni_recovery.execute.end import finish
from omni_recovery.execute.gate import prepare
from omni_recovery.execute.options import ExecuteOptions, Progress, StepOutcome
from omni_recovery.execute.runner import FINAL_PHASE, run_phases
from omni_recovery.register.ssh_hosts import pin_registered_hosts
from omni_recovery.report.build import reported_if_stopped, write_run_report
from omni_recovery.settings import Settings
from pipelines.dead_runs import fail_dead_runs


@contextmanager
def opened_recovery(
    settings: Settings,
    options: ExecuteOptions,
    passphrase: bytes,
    instance: Callable[[], DagsterInstance],
    progress: Progress | None = None,
) -> Iterator[RunContext]:
    """The run's context with every refusal behind it, closed on exit; see the module documentation.
    `instance` is opened only once the gate is passed: a refused run leaves the workspace untouched."""
    url = database_url(settings)
    init_database(url)
    pin_registered_hosts(settings.workspace)  # a set registered over SSH is read from the same host key
    context = RunContext(settings, options, passphrase, url, write_run_report, progress)
    try:
        prepare(context)
        fail_dead_runs(instance())  # once this process holds the run: those runs' process is gone
        yield context
    finally:
        context.close()


@dataclass(frozen=True)
class RestoreSession:
    """The restore assets' `recovery` resource. `whole_run`: the Dagster run is all of this session (a
    UI launch), so a step that stops it has the report written, and the final phase closes the
    recovery run; the command line does both itself, around all of its Dagster runs."""

    context: RunContext
    whole_run: bool = False

    @property
    def added_applications(self) -> list[str]:
        """The applications the partial restore adds for hard dependencies (RunContext.partial)."""
        return self.context.added_applications

    def run_phases(
        self, phases: Iterable[str], applications: Iterable[str] | None = None
    ) -> dict[str, StepOutcome]:
        if not self.whole_run:
            return run_phases(self.context, phases, applications)
        phases = list(phases)
        with reported_if_stopped(self.context):
            outcomes = run_phases(self.context, phases, applications)
        if FINAL_PHASE in phases:
            finish(self.context)  # closes the run, or fails naming the steps that have not succeeded
        return outcomes
