"""The `recovery` resource for restore runs started from the Dagster UI (the CLI passes its own).

Configure it in the launchpad (`resources: {recovery: {config: {plan_path: …}}}`): the plan is all it
needs, since the set's location, the inventory and the workspace come from the record written beside
the plan (`<plan>.source.json`; else the code location's workspace). The passphrase comes from the
environment of the code location (OMNI_RECOVERY_PASSPHRASE), never from run config. Applications a
backfill adds for their hard dependencies are tagged on the run (`HARD_DEPENDENCIES_TAG`).
Each run prepares one `Recovery` (validation on record, plan re-validated, passphrase checked,
the recovery run opened or resumed) before its first step and closes it after its last. The run in
the recovery database is closed by the final phase (the post-recovery backup) when every step has
succeeded; otherwise that asset fails naming the steps that have not, and the next run resumes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from assets.restore import APPLICATION_PARTITIONS
from omni_recovery.db.schema import init_database
from omni_recovery.db.server import database_url
from omni_recovery.errors import RecoveryError
from omni_recovery.execute.recovery import (
    FINAL_PHASE,
    ExecuteOptions,
    Recovery,
    applications_with_dependencies,
)
from omni_recovery.plan.generate import recorded_plan_source
from omni_recovery.settings import code_location_passphrase, load_settings
from omni_recovery.urls import absolute_location
from pipelines.sensors import RANGE_END_TAG, RANGE_START_TAG
from transforms.plan import Plan

PARTITION_TAG = "dagster/partition"
HARD_DEPENDENCIES_TAG = "omni-recovery/hard_dependencies_added"


class RecoveryResource(ConfigurableResource):
    """A recovery plan to execute: the plan file, and optionally where its set and inventory are."""

    workspace: str = ""
    plan_path: str = ""
    location: str = ""
    inventory_path: str = ""
    parallel_factor: int = 2
    signing_key: str = ""
    allow_system_root: bool = False
    _recovery: Recovery | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        if not self.plan_path:
            raise RecoveryError(
                "configure resources.recovery.config.plan_path with the recovery plan to execute"
            )
        passphrase = code_location_passphrase()
        settings = load_settings(self._workspace())
        url = database_url(settings)
        init_database(url)
        options = ExecuteOptions(
            plan_path=Path(self.plan_path).absolute(),
            location=absolute_location(self.location) if self.location else None,
            inventory_path=Path(self.inventory_path).absolute() if self.inventory_path else None,
            parallel_factor=self.parallel_factor,
            signing_key=Path(self.signing_key) if self.signing_key else None,
            allow_system_root=self.allow_system_root,
        )
        self._recovery = Recovery(settings, options, passphrase, url)
        # The launched partitions are known applications: checked, as every refusal, before the run opens.
        launched = _launched_applications(context)
        added = sorted(set(applications_with_dependencies(self._recovery.plan, launched)) - set(launched))
        if added and context.instance is not None and context.run is not None:
            context.instance.add_run_tags(context.run.run_id, {HARD_DEPENDENCIES_TAG: ",".join(added)})
        self._recovery.prepare()

    def _workspace(self) -> str | None:
        """Configured, else recorded beside the plan, else (None) the code location's workspace."""
        recorded = recorded_plan_source(Path(self.plan_path)).get("workspace")
        return self.workspace or recorded or None

    @property
    def plan(self) -> Plan:
        assert self._recovery is not None, "setup_for_execution did not run"
        return self._recovery.plan

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._recovery is not None:
            self._recovery.close()

    def run_phases(
        self, phases: Iterable[str], applications: Iterable[str] | None = None
    ) -> Mapping[str, Any]:
        assert self._recovery is not None, "setup_for_execution did not run"
        phases = list(phases)
        outcomes = self._recovery.run_phases(phases, applications)
        if FINAL_PHASE in phases:
            self._recovery.finish()  # closes the run, or fails naming the steps that have not succeeded
        return outcomes


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
