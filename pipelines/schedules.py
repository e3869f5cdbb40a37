"""Practice on a schedule: the rotating deep verification nightly, a drill weekly, freshness hourly.

How it works: three op jobs call omni_recovery.practice through the `practice` resource (the
workspace, its database, N slices, the set to drill, the age after which backups count as
stopped): `rotating_verification` hashes the next slice of every registered set,
`recovery_drill` rehearses the recovery of `drill_path` (default: the newest registered set), and
`backup_freshness` fails when no set is newer than `max_set_age_hours`. Each failure is a failed
run whose error names the failing check (`Failure` description and metadata), so the UI and the
run status sensor (notifications) see it like any other run. Their schedules take their cron
from OMNI_RECOVERY_VERIFY_CRON, OMNI_RECOVERY_DRILL_CRON and OMNI_RECOVERY_FRESHNESS_CRON; they
start stopped: turn them on in the UI (or `dagster schedule start NAME`).

What can go wrong: the passphrase and trusted keys come from the code location's environment
(OMNI_RECOVERY_PASSPHRASE, OMNI_RECOVERY_TRUSTED_KEY), never from run config; without them the
run fails saying which is missing. A drill needs the room of a recovery under the workspace.
"""

import os
from datetime import timedelta

from dagster import (
    DefaultScheduleStatus,
    Failure,
    JobDefinition,
    MetadataValue,
    OpExecutionContext,
    ScheduleDefinition,
    job,
    op,
)

from omni_recovery.backupset.signing import TrustedSigners, trusted_specs
from omni_recovery.errors import RecoveryError
from pipelines.resources import PracticeResource

__all__ = ["PRACTICE_JOBS", "PRACTICE_SCHEDULES"]


def _secrets() -> tuple[TrustedSigners, bytes]:
    from omni_recovery.settings import code_location_passphrase

    try:
        return TrustedSigners.from_specs(trusted_specs(())), code_location_passphrase()
    except RecoveryError as exc:
        raise Failure(description=str(exc)) from exc


@op(description="Hash the next slice (of verify_slices) of every registered set; fail naming ISO and path.")
def verify_next_slices(context: OpExecutionContext, practice: PracticeResource) -> None:
    from omni_recovery.practice.rotation import verify_registered_sets

    trusted, passphrase = _secrets()
    reports = verify_registered_sets(practice.settings, trusted, passphrase, practice.verify_slices)
    for report in reports:
        assert report.subset is not None
        context.log.info(
            f"{report.backup_set_id}: slice {report.subset.index}/{report.subset.count} "
            f"{'passed' if report.passed else 'FAILED'}"
        )
    failed = [r for r in reports if not r.passed]
    if failed:
        first = failed[0].blocking[0]
        raise Failure(
            description=f"rotating verification failed: set {failed[0].backup_set_id}: "
            f"{first.iso}: {first.path}: {first.message}",
            metadata={
                "failing_check": first.check,
                "sets_failed": len(failed),
                "backup_set_id": failed[0].backup_set_id or "",
            },
        )
    if not reports:
        context.log.info("no registered set to verify")


@op(description="Rehearse the recovery of drill_path (default: the newest registered set), unattended.")
def drill_newest_set(context: OpExecutionContext, practice: PracticeResource) -> None:
    from omni_recovery.register.registered_sets import registered_set_location
    from pipelines.drill import DrillOptions, run_drill

    trusted, passphrase = _secrets()
    try:
        location = practice.drill_path or registered_set_location(practice.settings)[1]
    except RecoveryError as exc:
        raise Failure(description=f"drill: {exc}") from exc
    options = DrillOptions(location=location, trusted=trusted, passphrase=passphrase)
    result = run_drill(practice.settings, options, echo=context.log.info)
    context.log.info(result.verdict())
    if not result.passed:
        raise Failure(
            description=result.verdict(),
            metadata={
                "failing_check": f"drill/{result.failed_stage}",
                "drill_id": result.drill_id,
                "backup_set_id": result.backup_set_id or "",
                "report": result.report or "",
            },
        )
    context.add_output_metadata(
        {"verdict": result.verdict(), "report": MetadataValue.path(result.report or "")}
    )


@op(description="Fail when no backup set is newer than max_set_age_hours: backups have stopped.")
def newest_set_is_fresh(context: OpExecutionContext, practice: PracticeResource) -> None:
    from omni_recovery.db.schema import init_database
    from omni_recovery.db.server import database_url
    from omni_recovery.practice.freshness import freshness_problem

    url = database_url(practice.settings)
    init_database(url)
    problem = freshness_problem(url, timedelta(hours=practice.max_set_age_hours))
    if problem is not None:
        raise Failure(description=problem, metadata={"failing_check": "newest_set_is_fresh"})
    context.log.info("the newest backup set is fresh")


@job(description="Rotating deep verification: the next slice of every registered set.")
def rotating_verification() -> None:
    verify_next_slices()


@job(description="A recovery drill of the newest registered set onto scratch targets.")
def recovery_drill() -> None:
    drill_newest_set()


@job(description="Backups have stopped? Fails when the newest set is older than allowed.")
def backup_freshness() -> None:
    newest_set_is_fresh()


PRACTICE_JOBS = [rotating_verification, recovery_drill, backup_freshness]


def _schedule(name: str, target: JobDefinition, env: str, default: str) -> ScheduleDefinition:
    return ScheduleDefinition(
        name=name,
        job=target,
        cron_schedule=os.environ.get(env) or default,
        default_status=DefaultScheduleStatus.STOPPED,
        description=f"cron from ${env} (default {default!r})",
    )


PRACTICE_SCHEDULES = [
    _schedule("nightly_verification", rotating_verification, "OMNI_RECOVERY_VERIFY_CRON", "0 2 * * *"),
    _schedule("weekly_drill", recovery_drill, "OMNI_RECOVERY_DRILL_CRON", "0 4 * * 0"),
    _schedule("hourly_freshness", backup_freshness, "OMNI_RECOVERY_FRESHNESS_CRON", "17 * * * *"),
]
