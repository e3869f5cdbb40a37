"""Running a job of the definitions in this process, in the workspace's Dagster instance: what every
runner shares (registration, validation, planning, backup and the restore).

`dagster_instance` opens the workspace's persistent instance; `run_job` runs a named job of some
definitions there as a launch from the UI would; `user_error` (pipelines/job_errors.py) says a
failed run in one line. This module imports no stage's assets, so that a runner needing only some of
them (execute-plan: the restore assets) pays for no others.
"""

from __future__ import annotations

import fcntl
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import AssetKey, DagsterInstance, Definitions

from omni_recovery.execute.tracking import this_process as process_tag
from omni_recovery.settings import Settings
from pipelines.dead_runs import PROCESS_TAG
from pipelines.instance_storage import ensure_instance_yaml
from pipelines.job_errors import user_error

# The tags of a run over a range of partition keys (Dagster's names).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def dagster_instance(settings: Settings) -> DagsterInstance:
    """The persistent Dagster instance of the workspace (SQLite under settings.dagster_home).

    Opened under an exclusive lock of the folder: the first opening creates and stamps its SQLite
    databases, and two processes doing that at once left two alembic heads (a second command of the
    same workspace started at the same moment, whatever it runs)."""
    ensure_instance_yaml(settings.dagster_home)
    with open(settings.dagster_home / ".instance.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        try:
            return DagsterInstance.from_config(str(settings.dagster_home))
        except Exception as exc:  # its SQLite databases are created or migrated on opening
            failure = user_error(exc, settings.dagster_home)
            if failure is exc:
                raise
            raise failure from exc


def contiguous_ranges(ordered: Sequence[str], wanted: Sequence[str]) -> list[tuple[str, str]]:
    """`wanted` keys as (first, last) ranges of consecutive keys in `ordered`."""
    want = set(wanted)
    ranges: list[tuple[str, str]] = []
    start: str | None = None
    previous: str | None = None
    for key in ordered:
        if key in want:
            if start is None:
                start = key
            previous = key
        elif start is not None and previous is not None:
            ranges.append((start, previous))
            start = None
    if start is not None and previous is not None:
        ranges.append((start, previous))
    return ranges


# Dagster's console log of a failed step is its whole stack: the command line says the library's error
# in one line instead, and the run's full event log stays in the Dagster instance (the UI shows it).
QUIET_CONSOLE = "CRITICAL"


def run_job(
    defs: Definitions,
    name: str,
    instance: DagsterInstance,
    *,
    selection: Sequence[AssetKey] | None = None,
    tags: Mapping[str, str] | None = None,
    run_config: Mapping[str, Any] | None = None,
) -> str:
    """Run the job `name` of `defs` in this process and in `instance`, as a launch from the UI runs it
    (the same job name, the checks of the selected assets); its run id. Raises on failure."""
    result = defs.resolve_job_def(name).execute_in_process(
        instance=instance,
        asset_selection=selection,
        tags={**(tags or {}), PROCESS_TAG: process_tag()},
        run_config=run_config,
    )
    return result.run_id
