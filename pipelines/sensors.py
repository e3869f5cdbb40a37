"""The sensors: ISO files dropped into a watched folder are ingested; finished runs are notified.

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

`notify_recovery_finished` and `notify_failures` (run status sensors, on by default) send a notice
through the channels of the workspace's notifications.yaml (omni_recovery.practice.notifications)
for a finished or failed recovery and a failed drill, verification or freshness run; with no
channel configured they skip. The recovery a drill runs (its runs tagged DRILL_TAG) is never
announced as a recovery. A channel that cannot be reached fails the tick, visibly in the UI.
"""

from __future__ import annotations

from pathlib import Path

from dagster import (
    AssetSelection,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)

from assets.ingest import INGEST_TABLES, ISO_PARTITIONS
from assets.restore import RESTORE_ASSETS
from omni_recovery.backupset.reader import list_backup_set
from omni_recovery.errors import BackupSetError
from omni_recovery.practice.notifications import Notice, load_channels, send
from pipelines.dagster_runs import RANGE_END_TAG, RANGE_START_TAG
from pipelines.resources import BackupSetRegistry, PracticeResource

__all__ = [
    "DRILL_TAG",
    "RANGE_END_TAG",
    "RANGE_START_TAG",
    "notify_failures",
    "notify_recovery_finished",
    "watched_iso_folder",
]

# On the runs of the recovery a drill runs (value: the drill id): a rehearsal, not to be announced.
DRILL_TAG = "omni-recovery/drill"


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


# -- notifications ------------------------------------------------------------------------------
# A run status sensor per outcome: a recovery that finished (its run materialised the report) or
# failed, and a failed drill, verification or freshness run; see omni_recovery.practice.notifications.

PRACTICE_KINDS = {
    "rotating_verification": "verification",
    "recovery_drill": "drill",
    "backup_freshness": "freshness check",
}


def _kind(run: DagsterRun) -> str | None:
    """What the run was, for a notice: recovery, drill, verification, freshness check; else None (a
    drill's inner recovery among them: the drill announces its own verdict)."""
    if DRILL_TAG in run.tags:
        return None
    if run.job_name in PRACTICE_KINDS:
        return PRACTICE_KINDS[run.job_name]
    return "recovery" if set(_steps(run)) & {a.key.to_user_string() for a in RESTORE_ASSETS} else None


def _steps(run: DagsterRun) -> list[str]:
    """The steps the run was to execute (its asset keys; runs of `materialize` have no asset_selection)."""
    return list(run.step_keys_to_execute or ())


def _failure(instance: DagsterInstance, run_id: str) -> tuple[str | None, dict[str, str]]:
    """The first failed step's one-line description and the metadata its Failure carried."""
    for record in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        data = record.dagster_event.step_failure_data if record.dagster_event else None
        if data is None:
            continue
        user = data.user_failure_data
        if user is not None:
            metadata = {k: str(getattr(v, "value", v)) for k, v in user.metadata.items()}
            return user.description, metadata
        return (data.error.message.strip().splitlines() or [""])[-1] if data.error else None, {}
    return None, {}


def _notice(context: RunStatusSensorContext, practice: PracticeResource, outcome: str) -> Notice | None:
    from omni_recovery.db.server import database_url
    from omni_recovery.practice.notifications import latest_recovery

    run = context.dagster_run
    kind = _kind(run)
    if kind is None or (outcome == "SUCCEEDED" and "recovery_report" not in _steps(run)):
        return None
    stats = context.instance.get_run_stats(run.run_id)
    seconds = stats.end_time - stats.start_time if stats.end_time and stats.start_time else None
    detail, metadata = _failure(context.instance, run.run_id) if outcome == "FAILED" else (None, {})
    set_id, report = metadata.get("backup_set_id") or None, metadata.get("report") or None
    if kind == "recovery":
        set_id, report = latest_recovery(database_url(practice.settings)) or (None, None)
        if outcome == "SUCCEEDED":
            detail = _recommendations_line(database_url(practice.settings))
    if metadata.get("failing_check"):
        detail = f"[{metadata['failing_check']}] {detail}"
    return Notice(f"{kind} {outcome}", run.run_id, set_id, seconds, report, detail)


def _recommendations_line(url: str) -> str:
    """The analysis of the recovery that finished: `omni performance optimize`'s list, in one line."""
    from omni_recovery.practice.optimize import recommendations_for

    found = recommendations_for(url).recommendations
    listed = "; ".join(f"[{r.kind}] {r.message}" for r in found) or "none"
    return f"{len(found)} recommendation(s) (omni performance optimize): {listed}"


def _deliver(context: RunStatusSensorContext, practice: PracticeResource, outcome: str) -> SkipReason | None:
    channels = load_channels(Path(practice.workspace))
    notice = _notice(context, practice, outcome) if channels.any else None
    if notice is None:
        return SkipReason("nothing to notify" if channels.any else "no notification channel configured")
    sent = send(notice, channels)
    context.log.info(f"notified {', '.join(sent)}: {notice.subject()}")
    return None


@run_status_sensor(
    name="notify_recovery_finished",
    run_status=DagsterRunStatus.SUCCESS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Notifies (workspace notifications.yaml) when a recovery has finished.",
)
def notify_recovery_finished(
    context: RunStatusSensorContext, practice: PracticeResource
) -> SkipReason | None:
    return _deliver(context, practice, "SUCCEEDED")


@run_failure_sensor(
    name="notify_failures",
    default_status=DefaultSensorStatus.RUNNING,
    description="Notifies (workspace notifications.yaml) when a recovery, drill, verification or "
    "freshness run fails.",
)
def notify_failures(context: RunFailureSensorContext, practice: PracticeResource) -> SkipReason | None:
    return _deliver(context, practice, "FAILED")
