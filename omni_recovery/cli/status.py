"""`status`: where recovery runs stand, read from the recovery database (also while one runs, from
any process); options parsed here, the reading done by the library."""

from __future__ import annotations

from pathlib import Path

import click

from omni_recovery.cli.options import handle_errors, progress_every_option, workspace_option
from omni_recovery.settings import WORKSPACE_ENV


@click.command()
@workspace_option
@click.option("--runs", default=1, show_default=True, help="How many recent recovery runs to show.")
@click.option(
    "--verification",
    is_flag=True,
    help="Instead: per set, the share of bytes the rotating deep verification verified, and how long ago.",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Follow the latest run while it runs (started here or elsewhere): phase, step, files and bytes "
    "of the planned total, rate and ETA, until it stops; then the summary.",
)
@progress_every_option
def status(workspace: Path | None, runs: int, verification: bool, watch: bool, progress_every: float) -> None:
    """Show recovery progress from the recovery database (works while a run goes on).

    \b
    Example:
      omni-recovery status --runs 3
      omni-recovery status --watch
      omni-recovery status --verification
    """
    from omni_recovery.cli.practice import verification_status

    if verification:
        handle_errors(verification_status)(workspace, runs)
    else:
        handle_errors(_status)(workspace, runs, progress_every if watch else None)


def _status(workspace: Path | None, runs: int, watch_every: float | None = None) -> None:
    from omni_recovery.db.connection import connect
    from omni_recovery.db.schema import init_database
    from omni_recovery.db.server import database_url
    from omni_recovery.errors import RecoveryError
    from omni_recovery.execute.run_history import recent_runs
    from omni_recovery.execute.run_lock import run_holder
    from omni_recovery.execute.tracking import RUNNING, SUCCEEDED
    from omni_recovery.settings import load_settings

    settings = load_settings(workspace)
    if settings.embedded and not settings.pgdata.exists():
        raise RecoveryError(
            f"no recovery database in workspace {settings.workspace} (none made now): give --workspace DIR "
            f"or set {WORKSPACE_ENV} to the workspace the recovery runs in"
        )
    url = database_url(settings)
    init_database(url)
    with connect(url) as conn:
        if watch_every is not None and (latest := recent_runs(conn, limit=1)):
            from omni_recovery.cli.watch import watch_run

            watch_run(conn, latest[0].run_id, latest[0].plan_id, watch_every)
        records = recent_runs(conn, limit=runs)
        holders = {r.run_id: run_holder(conn, r.plan_id) for r in records if r.status == RUNNING}
    stopped = {run_id for run_id, holder in holders.items() if holder is None}
    if stopped:
        from pipelines.dead_runs import fail_dead_runs
        from pipelines.runner import dagster_instance

        fail_dead_runs(dagster_instance(settings))  # so the UI stops showing them running
    if not records:
        where = (
            f"workspace {settings.workspace}"
            if settings.embedded
            else "the database of OMNI_RECOVERY_DATABASE_URL"
        )
        click.echo(f"no recovery run yet in {where}")
    for run in records:
        done = sum(1 for s in run.steps if s.status == SUCCEEDED)
        written = sum(s.bytes_written for s in run.steps)
        holder = holders.get(run.run_id)
        status = (
            "not running (no process holds it; execute-plan of its plan continues it)"
            if run.run_id in stopped
            else f"{run.status} (by {holder})"
            if holder
            else run.status
        )
        click.echo(
            f"{run.run_id}  plan {run.plan_id}  {status}  started {run.started_at:%Y-%m-%d %H:%M:%S}"
            f"  steps {done}/{len(run.steps)} succeeded  {written / 2**20:.1f} MiB written"
        )
        for operator in run.operators:
            click.echo(f"  {operator}")
        for step in run.steps:
            if step.status == SUCCEEDED:
                continue
            shown = "stopped" if step.status == RUNNING and run.run_id in stopped else step.status
            if step.status == RUNNING:
                note = f"{step.bytes_written / 2**20:.1f} MiB so far" if step.bytes_written else ""
            else:
                note = step.detail.get("error") or step.detail.get("reason", "")
            click.echo(f"  {shown:<10} {step.step_id} (attempt {step.attempts}) {note}".rstrip())
