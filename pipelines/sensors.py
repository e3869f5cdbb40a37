"""The watched-folder sensor: ISO files dropped into a folder become partitions and are ingested.

How it works: every `minimum_interval_seconds` the daemon (`dagster dev` runs one) calls
`watched_iso_folder`. It lists the folder named by the `iso_registry` resource's `watch_url`
(environment variable OMNI_RECOVERY_WATCH_URL in the default definitions), records ISOs not yet
partitions in the registry, and returns a `SensorResult` that adds their partition keys and
requests ONE run of the ingest assets over the new keys (a partition range: new keys are added
last, so they are contiguous). The catalog assets follow on their own: their automation
condition is `eager`, so the automation sensor materialises them once every ingest partition is.

What can go wrong: an unset `watch_url` skips; a folder holding something that is not an ISO of
a backup set (a foreign file, an unfinished `.partial`) skips with the error naming the file,
and nothing is registered until the folder is clean. A test calling the sensor with
`build_sensor_context` gets the result without the partitions being added.
"""

from __future__ import annotations

from dagster import (
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.ingest import INGEST_TABLES, ISO_PARTITIONS
from omni_recovery.backupset.reader import list_backup_set
from omni_recovery.errors import BackupSetError
from pipelines.resources import BackupSetRegistry

__all__ = ["RANGE_END_TAG", "RANGE_START_TAG", "watched_iso_folder"]

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


@sensor(
    name="watched_iso_folder",
    asset_selection=AssetSelection.assets(*INGEST_TABLES),
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.STOPPED,
    description="Registers ISOs dropped into the watched folder (OMNI_RECOVERY_WATCH_URL) and ingests them.",
)
def watched_iso_folder(
    context: SensorEvaluationContext, iso_registry: BackupSetRegistry
) -> SensorResult | SkipReason:
    """New ISOs in the watched folder become `isos` partitions and one ingest run."""
    registry = iso_registry
    if not registry.watch_url:
        return SkipReason("no folder is watched: set OMNI_RECOVERY_WATCH_URL")
    try:
        members = list_backup_set(registry.watch_url)
    except BackupSetError as exc:
        return SkipReason(f"not registering anything from {registry.watch_url}: {exc}")
    known = set(context.instance.get_dynamic_partitions(ISO_PARTITIONS.name or "isos"))
    new = [m for m in members if m.name.filename not in known]
    if not new:
        return SkipReason(f"no new ISO in {registry.watch_url}")
    keys = registry.register(new)
    return SensorResult(
        dynamic_partitions_requests=[ISO_PARTITIONS.build_add_request(keys)],
        run_requests=[
            RunRequest(
                run_key=f"isos:{keys[0]}..{keys[-1]}:{len(keys)}",
                tags={RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]},
            )
        ],
    )
