"""What the command line calls: register a backup set by running the ingest and catalog assets.

`register_isos(location, settings)`:
1. lists the set folder (`list_backup_set`): a file that is not an ISO of a backup set is refused
   by name here, before anything is registered or loaded;
2. prepares the workspace: folders, the recovery database (migrated), and the Dagster instance in
   `settings.dagster_home` (`dagster.yaml` from `pipelines.instance_storage`), so the runs show up
   in `dagster dev` started with DAGSTER_HOME set to that folder;
3. records each ISO's URL in the registry and adds its file name as a partition of `isos`;
4. runs the named job `ingest_isos` for the set's partitions in ONE run (a key range; several only
   if the keys are not contiguous), then `build_catalog`, in this process with `run_job`, so the UI
   shows them under the jobs' names, each with its blocking checks (`iso_validation`,
   `set_validation`). The signer is judged against `trusted_keys` (--trusted-key) and
   OMNI_RECOVERY_TRUSTED_KEY; with neither, each ISO's check warns that it was not judged;
5. reads the summary (ISOs by kind, components, dependencies, files, bytes) back from the catalog.
Registering the same set again replaces its rows; a second set lands beside the first.

What can go wrong: a corrupt ISO, or a failing blocking check, fails the ingest run: the error
(naming the ISO and path) is raised as `BackupSetError`, the partitions this call added are removed
again, and the catalog is left as it was, because the catalog run never starts. A failing catalog
asset rolls back its own PostgreSQL transaction. Dagster runs are recorded even when they fail.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import DagsterEventType, DagsterInstance, RunsFilter
from dagster._core.errors import DagsterAssetCheckFailedError

from assets.catalog import CATALOG_ASSETS
from assets.checks import TrustedKeys
from assets.ingest import ISO_PARTITIONS
from io_managers.postgres import resolve_database_url
from omni_recovery.backupset import layout
from omni_recovery.backupset.reader import list_backup_set
from omni_recovery.errors import BackupSetError, some_of
from omni_recovery.execute.tracking import this_process as process_tag
from omni_recovery.register.catalog_sql import run_query
from omni_recovery.register.registered_sets import record_registration, require_whole_sets
from omni_recovery.settings import Settings
from pipelines.dagster_runs import (
    QUIET_CONSOLE,
    RANGE_END_TAG,
    RANGE_START_TAG,
    contiguous_ranges,
    dagster_instance,
    run_job,
    user_error,
)
from pipelines.dead_runs import PROCESS_TAG
from pipelines.definitions import build_definitions
from pipelines.resources import BackupSetRegistry

__all__ = [  # the shared parts from pipelines.dagster_runs, as the runners and tests import them
    "QUIET_CONSOLE",
    "RegisterSummary",
    "contiguous_ranges",
    "dagster_instance",
    "register_isos",
    "run_job",
    "user_error",
]

CATALOG_STEPS = len(CATALOG_ASSETS)  # one progress step per catalog asset (op)
PARTITIONS = ISO_PARTITIONS.name or "isos"


@dataclass
class RegisterSummary:
    """What one registration did and what the catalog now holds for the sets registered."""

    backup_set_ids: list[str]
    isos_by_kind: dict[str, int]
    new_isos: int
    components: int
    dependencies: int
    files: int
    bytes: int
    iso_bytes: int
    run_ids: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """A one-screen summary."""
        order = {kind: i for i, kind in enumerate(layout.KINDS)}
        ranked = sorted(self.isos_by_kind.items(), key=lambda item: order.get(item[0], len(order)))
        kinds = ", ".join(f"{kind} {n}" for kind, n in ranked)
        total = sum(self.isos_by_kind.values())
        return [
            f"backup set(s): {', '.join(self.backup_set_ids)}",
            f"ISOs:          {total} ({self.new_isos} new)",
            f"  by kind:     {kinds}",
            f"ISO bytes:     {_size(self.iso_bytes)}",
            f"components:    {self.components}",
            f"dependencies:  {self.dependencies}",
            f"files:         {self.files} manifest entries, {_size(self.bytes)} stored",
            f"dagster runs:  {', '.join(self.run_ids)}",
            *(f"check:         {line}" for line in self.checks),
        ]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def register_isos(
    location: str,
    settings: Settings,
    *,
    progress: Callable[[str, int], None] | None = None,
    instance: DagsterInstance | None = None,
    log_level: str = "INFO",
    trusted_keys: tuple[str, ...] = (),
) -> RegisterSummary:
    """Register the backup set(s) at `location` (folder or fsspec URL) into the catalog, its blocking
    checks run as in the UI (`trusted_keys` judge the signer; without any, the checks say it is not)."""
    members = list_backup_set(location)
    require_whole_sets(location, members)
    settings.ensure_folders()
    database_url = resolve_database_url(str(settings.workspace), settings.database_url)
    instance = instance or dagster_instance(settings)
    registry = BackupSetRegistry(workspace=str(settings.workspace))
    keys = [m.name.filename for m in members]
    existing = set(instance.get_dynamic_partitions(PARTITIONS))
    new = [k for k in keys if k not in existing]
    previous = registry.entries()
    registry.register(members)
    if new:
        instance.add_dynamic_partitions(PARTITIONS, new)
    trust = TrustedKeys(tuple(trusted_keys), unchecked_signer_allowed=True)
    defs = build_definitions(settings, progress=progress, overrides={"trusted_keys": trust})
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    run_ids: list[str] = []
    try:
        for first, last in contiguous_ranges(instance.get_dynamic_partitions(PARTITIONS), keys):
            tags = {RANGE_START_TAG: first, RANGE_END_TAG: last}
            run_ids.append(run_job(defs, "ingest_isos", instance, tags=tags, run_config=run_config))
    except Exception as exc:
        for key in new:
            instance.delete_dynamic_partition(PARTITIONS, key)
        registry.restore(keys, previous)
        raise _refusal(instance, location, exc, "this registration is undone") from exc
    set_ids = sorted({m.name.backup_set_id for m in members})
    record_registration(database_url, set_ids)
    try:
        run_ids.append(run_job(defs, "build_catalog", instance, run_config=run_config))
    except Exception as exc:
        raise _refusal(
            instance, location, exc, "the catalog may hold the set in part: register it again"
        ) from exc
    summary = _summary(settings, set_ids, len(new), run_ids)
    summary.checks = check_lines(instance, run_ids)
    return summary


def _evaluations(instance: DagsterInstance, run_id: str) -> list[Any]:
    """The asset check evaluations of a run, as the UI shows them."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
    return [
        r.event_log_entry.dagster_event.event_specific_data
        for r in records
        if r.event_log_entry.dagster_event is not None
    ]


def check_lines(instance: DagsterInstance, run_ids: list[str]) -> list[str]:
    """Per check of these runs: how many evaluations passed, and the warnings they carry (a signer
    not judged for want of a trusted key is one)."""
    by_check: dict[str, list[Any]] = collections.defaultdict(list)
    for run_id in run_ids:
        for evaluation in _evaluations(instance, run_id):
            by_check[evaluation.check_name].append(evaluation)
    lines = []
    for name, found in sorted(by_check.items()):
        passed = sum(1 for e in found if e.passed)
        warned = [e for e in found if int(e.metadata["warnings"].value or 0)]
        line = f"{name} passed {passed} of {len(found)}"
        if warned:
            line += f"; {len(warned)} with warnings, e.g. {warned[0].metadata['first_warning'].value}"
        lines.append(line)
    return lines


def _refusal(instance: DagsterInstance, location: str, exc: Exception, after: str) -> BaseException:
    """The library's error, or for a blocking check that failed, one line with its first problems."""
    if not isinstance(exc, DagsterAssetCheckFailedError):
        return user_error(exc, Path(instance.root_directory))
    [run] = instance.get_runs(filters=RunsFilter(tags={PROCESS_TAG: process_tag()}), limit=1)
    failed = [e for e in _evaluations(instance, run.run_id) if not e.passed]
    found = sorted(
        {str(e.metadata["first_blocking"].value) for e in failed if "first_blocking" in e.metadata}
    )
    return BackupSetError(
        f"{location}: a blocking check failed ({some_of(found, 1)}): {after}; "
        "`omni-recovery validate-isos` lists every problem"
    )


def _summary(settings: Settings, set_ids: list[str], new: int, run_ids: list[str]) -> RegisterSummary:
    base = str(settings.catalog)
    quoted = ", ".join("'" + s.replace("'", "''") + "'" for s in set_ids)
    where = f"WHERE backup_set_id IN ({quoted})"

    def one(query: str) -> Any:
        return run_query(base, query)[1][0][0]

    kinds: dict[str, int] = collections.Counter()
    for kind, count in run_query(base, f"SELECT kind, count(*) FROM isos {where} GROUP BY kind")[1]:
        kinds[str(kind)] = int(count)
    return RegisterSummary(
        backup_set_ids=set_ids,
        isos_by_kind=dict(kinds),
        new_isos=new,
        components=int(one(f"SELECT count(*) FROM components {where}")),
        dependencies=int(one(f"SELECT count(*) FROM dependencies {where}")),
        files=int(one(f"SELECT count(*) FROM files {where}")),
        bytes=int(one(f"SELECT coalesce(sum(size), 0) FROM files {where}")),
        iso_bytes=int(one(f"SELECT coalesce(sum(size_bytes), 0) FROM isos {where}")),
        run_ids=run_ids,
    )


def workspace_paths(settings: Settings) -> dict[str, Path]:
    """Where registration keeps things (for messages and docs)."""
    return {
        "catalog": settings.catalog,
        "dagster_home": settings.dagster_home,
        "registry": settings.workspace / "iso_registry.json",
    }
