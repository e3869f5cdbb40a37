"""What `execute-plan` calls: the restore assets materialised in plan order through Dagster.

How it works: the run's context is built and passes the gate first (pipelines/recovery_run.py: the
set's deep validation on record, the plan re-validated, the passphrase checked, the run opened or
resumed in the recovery database, Dagster runs of a dead process marked failed), so every refusal
comes before anything is written. It is handed to the restore assets as their `recovery` resource,
and the phase groups are materialised one after another in this process, in the workspace's
Dagster instance as runs of the `restore` job (so they show in `dagster dev` as a UI launch does):
the Director to storage phases, then the volumes of every chosen application (partitions
`applications`, one run per contiguous key range), the core services, the applications, and
verification, report and the post-recovery backup. A partial restore (`applications`) runs only
the steps of the chosen applications and every hard dependency the plan names for them, but those
a closed run of the plan restored and verified before (transforms.plan.partial), then the report.

What can go wrong: a step that fails follows the plan's `on_failure` (omni_recovery.execute.runner):
`stop` fails its asset and the Dagster run; `skip-dependents` and `continue` let the assets succeed
(their metadata counts failed and skipped steps) and `finish` then refuses to close the recovery
run, naming the steps and the report. Either way the recovery run stays open in the database, so
running the same command again resumes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

from dagster import DagsterExecutionInterruptedError, DagsterInstance

from assets.restore import (
    APPLICATION_PARTITIONS,
    ASSET_PHASES,
    RESTORE_ORDER,
    director_ring,
    recovery_report,
    restored_directors,
)
from omni_recovery.errors import Interrupted, RecoveryError
from omni_recovery.execute.context import RunContext
from omni_recovery.execute.end import finish
from omni_recovery.execute.options import ExecuteOptions
from omni_recovery.execute.selection import applications_of
from omni_recovery.report.build import partial_notes, reported_if_stopped
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
from pipelines.recovery_resource import HARD_DEPENDENCIES_TAG
from pipelines.recovery_run import RestoreSession, opened_recovery
from pipelines.restore_definitions import restore_definitions

PARTITIONS = APPLICATION_PARTITIONS.name or "applications"
DIRECTOR_ASSETS = (restored_directors, director_ring)  # what deploy-directors materialises
DIRECTOR_PHASES = tuple(phase for a in DIRECTOR_ASSETS for phase in ASSET_PHASES[a.key.path[-1]])
Echo = Callable[[str], None]


@dataclass(frozen=True)
class ExecuteSummary:
    run_id: str
    plan_id: str
    applications: list[str]
    dagster_runs: list[str]
    report: str | None
    post_recovery_backup: str | None


def _logging(log_level: str) -> dict[str, Any]:
    return {"loggers": {"console": {"config": {"log_level": log_level}}}}


def execute_recovery(
    settings: Settings,
    options: ExecuteOptions,
    passphrase: bytes,
    *,
    progress: Callable[[str, int], None] | None = None,
    echo: Echo = lambda line: None,
    log_level: str = QUIET_CONSOLE,
    tags: Mapping[str, str] | None = None,
) -> ExecuteSummary:
    """Run the recovery the options describe; `tags` go on each of its Dagster runs."""
    if options.applications and options.executor == "celery":
        raise RecoveryError("--applications runs in process: the restore workers restore the whole plan")
    instance = _opened_once(settings)
    with opened_recovery(settings, options, passphrase, instance, progress) as recovery:
        chosen = _applications(recovery, options)
        extra = sorted(set(chosen) - set(options.applications)) if options.applications else []
        if options.applications:
            for line in partial_notes(recovery):
                echo(line)
        echo(f"recovery run {recovery.tracker.run_id} of plan {recovery.plan_id}")
        with reported_if_stopped(recovery):
            if options.executor == "celery":
                runs = _through_workers(instance(), recovery, echo, _logging(log_level), dict(tags or {}))
            else:
                runs = _materialize_in_order(
                    instance(),
                    recovery,
                    chosen,
                    partial=bool(options.applications),
                    added=extra,
                    echo=echo,
                    run_config=_logging(log_level),
                    run_tags=tags or {},
                )
        details = {s.step_id: s.detail for s in _steps(recovery)}
        report = details.get("report/recovery", {}).get("report")
        try:
            finish(recovery)
        except RecoveryError as exc:
            raise RecoveryError(f"{exc}. The report: {report}" if report else str(exc)) from exc
        return ExecuteSummary(
            run_id=recovery.tracker.run_id,
            plan_id=recovery.plan_id,
            applications=chosen,
            dagster_runs=runs,
            report=report,
            post_recovery_backup=details.get("backup/post-recovery", {}).get("backup"),
        )


def deploy_directors(
    settings: Settings,
    options: ExecuteOptions,
    passphrase: bytes,
    *,
    progress: Callable[[str, int], None] | None = None,
    echo: Echo = lambda line: None,
    log_level: str = QUIET_CONSOLE,
) -> ExecuteSummary:
    """Only the Director phase and the ring; the run stays open, so execute-plan continues from there."""
    instance = _opened_once(settings)
    with opened_recovery(settings, options, passphrase, instance, progress) as recovery:
        echo(f"recovery run {recovery.tracker.run_id} of plan {recovery.plan_id}: Directors and ring")
        group = list(DIRECTOR_ASSETS)
        with reported_if_stopped(recovery):
            run = _materialize(group, recovery, instance(), {}, _logging(log_level))
        return ExecuteSummary(recovery.tracker.run_id, recovery.plan_id, [], [run], None, None)


def _opened_once(settings: Settings) -> Callable[[], DagsterInstance]:
    """The workspace's Dagster instance, opened on first call (after the gate) and then kept: each
    opening reads its storages' schema versions again."""
    return cache(partial(dagster_instance, settings))


def _applications(recovery: RunContext, options: ExecuteOptions) -> list[str]:
    if recovery.partial is not None:
        return applications_of(recovery.partial)
    return sorted(s.id.split("/", 1)[1] for s in recovery.plan.steps if s.id.startswith("application/"))


def _materialize_in_order(
    instance: DagsterInstance,
    recovery: RunContext,
    applications: list[str],
    *,
    partial: bool,
    added: list[str],
    echo: Echo,
    run_config: dict[str, Any],
    run_tags: Mapping[str, str],
) -> list[str]:
    known = set(instance.get_dynamic_partitions(PARTITIONS))
    instance.add_dynamic_partitions(PARTITIONS, [a for a in applications if a not in known])
    ordered = instance.get_dynamic_partitions(PARTITIONS)
    groups = _partial_groups(recovery) if partial else RESTORE_ORDER
    ranges = contiguous_ranges(ordered, applications)
    if len(ranges) == 1:
        # One run for every phase: Dagster runs the unpartitioned phases once and the partitioned ones
        # over the key range, in dependency order (each run costs about a second of fixed time).
        groups = [[asset for group in groups for asset in group]]
    runs = []
    for group in groups:
        partitioned = any(asset.partitions_def is not None for asset in group)
        for key_range in ranges if partitioned else [None]:
            tags = dict(run_tags)
            if key_range:
                tags |= {RANGE_START_TAG: key_range[0], RANGE_END_TAG: key_range[1]}
            if added:
                tags[HARD_DEPENDENCIES_TAG] = ",".join(added)
            names = ", ".join(a.key.to_user_string() for a in group)
            echo(f"  materialising {names}" + (f" [{key_range[0]} … {key_range[1]}]" if key_range else ""))
            runs.append(_materialize(group, recovery, instance, tags, run_config))
    return runs


def _through_workers(
    instance: DagsterInstance,
    recovery: RunContext,
    echo: Echo,
    run_config: dict[str, Any],
    tags: dict[str, str],
) -> list[str]:
    """The node steps on the restore workers, each on its node's queue, then the phases that judge
    the whole run (verification, report, post-recovery backup) here."""
    from pipelines.celery_workers import celery_urls, run_on_workers
    from pipelines.worker_watchdog import watching

    echo("  restore_by_node on the restore workers")
    broker = celery_urls(recovery.settings, recovery.options.broker)[0]
    with watching(recovery.database_url, broker, echo):
        runs = [run_on_workers(recovery, tags, run_config)]
    closing = RESTORE_ORDER[-1]
    echo(f"  materialising {', '.join(a.key.to_user_string() for a in closing)}")
    runs.append(_materialize(list(closing), recovery, instance, tags, run_config))
    return runs


def _partial_groups(recovery: RunContext) -> list[list[Any]]:
    """The restore assets whose phases have a step the partial restore runs, then the report."""
    phases = {s.phase for s in recovery.selected_steps()}
    groups = [
        [a for a in group if phases & set(ASSET_PHASES[a.key.to_user_string()])]
        for group in RESTORE_ORDER[:-1]
    ]
    return [group for group in groups if group] + [[recovery_report]]


def _materialize(
    group: list[Any],
    recovery: RunContext,
    instance: DagsterInstance,
    tags: dict[str, str],
    run_config: dict[str, Any],
) -> str:
    """The assets of `group` as a run of the `restore` job, with `recovery` as its resource."""
    defs = restore_definitions(RestoreSession(recovery))
    selection = [key for asset in group for key in asset.keys]
    try:
        return run_job(defs, "restore", instance, selection=selection, tags=tags, run_config=run_config)
    except (KeyboardInterrupt, DagsterExecutionInterruptedError) as exc:
        raise Interrupted(
            "interrupted: the steps in flight stopped and left nothing unverified under a final name; "
            "execute-plan again resumes the run"
        ) from exc
    except Exception as exc:
        raise user_error(exc, recovery.settings.dagster_home) from exc


def _steps(recovery: RunContext) -> list[Any]:
    from omni_recovery.execute.run_history import recent_runs

    return next(
        r.steps for r in recent_runs(recovery.tracker.conn, limit=50) if r.run_id == recovery.tracker.run_id
    )
