"""The `recovery` resource for restore runs started from the Dagster UI (the CLI passes its own).

Configure it in the launchpad (`resources: {recovery: {config: {plan_path: …}}}`): the plan is all it
needs, since the set's location, the inventory and the workspace come from the record written beside
the plan (`<plan>.source.json`; else the code location's workspace). The passphrase comes from the
environment of the code location (OMNI_RECOVERY_PASSPHRASE), never from run config. Each run builds
its recovery as the command line does (pipelines/recovery_run.py): refused, naming why, before its
first step when it cannot work (no plan, no record of its set, a set not validated, the run's lock
held by another process, a wrong passphrase, an unknown application partition); Dagster runs a dead
process left unfinished are marked failed. Applications a backfill adds for their hard dependencies
are tagged on the run (`HARD_DEPENDENCIES_TAG`). The recovery run is closed by the final phase when
every step has succeeded; otherwise that asset fails naming the steps that have not, and the next
run resumes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from dagster import ConfigurableResource, DagsterError, InitResourceContext
from pydantic import PrivateAttr

from assets.restore import APPLICATION_PARTITIONS
from omni_recovery.errors import RecoveryError
from omni_recovery.execute.options import ExecuteOptions
from omni_recovery.plan.generate import recorded_plan_source
from omni_recovery.settings import code_location_passphrase, load_settings
from omni_recovery.urls import absolute_location
from pipelines.dagster_runs import RANGE_END_TAG, RANGE_START_TAG
from pipelines.recovery_run import RestoreSession, opened_recovery

PARTITION_TAG = "dagster/partition"
HARD_DEPENDENCIES_TAG = "omni-recovery/hard_dependencies_added"
P = ParamSpec("P")
T = TypeVar("T")


class LaunchRefused(DagsterError):
    """A UI launch refused before its first step. A Dagster error, so that Dagster lets it out of the
    resource unwrapped: the run fails with this one line, not inside DagsterResourceFunctionError."""


def _refused_in_one_line(opening: Callable[P, Iterator[T]]) -> Callable[P, Iterator[T]]:
    """The resource's opening, its refusal (a RecoveryError) raised as LaunchRefused."""

    @functools.wraps(opening)
    def opened(*args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        try:
            yield from opening(*args, **kwargs)
        except RecoveryError as exc:
            raise LaunchRefused(str(exc)) from None

    return opened


class RecoveryResource(ConfigurableResource):
    """A recovery plan to execute: the plan file, and optionally where its set and inventory are."""

    workspace: str = ""
    plan_path: str = ""
    location: str = ""
    inventory_path: str = ""
    parallel_factor: int = 2
    signing_key: str = ""
    allow_system_root: bool = False
    _session: RestoreSession | None = PrivateAttr(default=None)

    @contextmanager
    @_refused_in_one_line
    def yield_for_execution(self, context: InitResourceContext) -> Iterator[RecoveryResource]:
        if not self.plan_path:
            raise RecoveryError(
                "configure resources.recovery.config.plan_path with the recovery plan to execute"
            )
        passphrase = code_location_passphrase()
        launched = _launched_applications(context)
        options = self._options(launched)
        instance = context.instance
        if instance is None:
            raise RecoveryError("a restore runs in a Dagster instance; this run has none")
        settings = load_settings(self._workspace())
        with opened_recovery(settings, options, passphrase, lambda: instance) as run:
            added = run.added_applications
            if added and context.run is not None:
                instance.add_run_tags(context.run.run_id, {HARD_DEPENDENCIES_TAG: ",".join(added)})
            self._session = RestoreSession(run, whole_run=True)
            try:
                yield self
            finally:
                self._session = None

    def _options(self, launched: list[str]) -> ExecuteOptions:
        return ExecuteOptions(
            plan_path=Path(self.plan_path).absolute(),
            location=absolute_location(self.location) if self.location else None,
            inventory_path=Path(self.inventory_path).absolute() if self.inventory_path else None,
            parallel_factor=self.parallel_factor,
            signing_key=Path(self.signing_key) if self.signing_key else None,
            allow_system_root=self.allow_system_root,
            launched_applications=tuple(launched),
        )

    def _workspace(self) -> str | None:
        """Configured, else recorded beside the plan, else (None) the code location's workspace."""
        recorded = recorded_plan_source(Path(self.plan_path)).get("workspace")
        return self.workspace or recorded or None

    @property
    def added_applications(self) -> list[str]:
        assert self._session is not None, "yield_for_execution did not run"
        return self._session.added_applications

    def run_phases(
        self, phases: Iterable[str], applications: Iterable[str] | None = None
    ) -> Mapping[str, Any]:
        assert self._session is not None, "yield_for_execution did not run"
        return self._session.run_phases(phases, applications)


def _launched_applications(context: InitResourceContext) -> list[str]:
    """The application partitions the run was launched for (one key, or a range of keys)."""
    tags = context.run.tags if context.run is not None else {}
    if PARTITION_TAG in tags:
        return [tags[PARTITION_TAG]]
    if RANGE_START_TAG not in tags or context.instance is None:
        return []
    keys = context.instance.get_dynamic_partitions(APPLICATION_PARTITIONS.name or "applications")
    start, end = tags[RANGE_START_TAG], tags.get(RANGE_END_TAG)
    if start not in keys or end not in keys:
        return []  # Dagster refuses a range of keys it does not have
    return list(keys[keys.index(start) : keys.index(end) + 1])
