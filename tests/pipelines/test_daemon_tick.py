"""One real tick: the Dagster daemon, started on the project's workspace.yaml, runs a practice
schedule, and the run fails naming the failing check (no set: backups have never arrived)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from omni_recovery.db.schema import init_database
from omni_recovery.settings import Settings
from pipelines.runner import dagster_instance

REPO = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
DEADLINE_SECONDS = 240  # the cron ticks each minute; the daemon and the run take seconds to start


def test_the_daemon_ticks_the_freshness_schedule_into_a_failed_run_naming_the_check(
    tmp_path: Path, fresh_database_url: str
):
    init_database(fresh_database_url)
    settings = Settings(tmp_path / "ws", fresh_database_url)
    instance = dagster_instance(settings)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(settings.dagster_home),
        "OMNI_RECOVERY_WORKSPACE": str(settings.workspace),
        "OMNI_RECOVERY_DATABASE_URL": fresh_database_url,
        "OMNI_RECOVERY_FRESHNESS_CRON": "* * * * *",
    }
    workspace = ["-w", str(REPO / "workspace.yaml")]
    start = [str(BIN / "dagster"), "schedule", "start", "hourly_freshness", *workspace]
    subprocess.run(start, env=env, cwd=REPO, check=True, capture_output=True, timeout=120)
    log = (tmp_path / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", *workspace],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        run = _wait_for_finished_run(instance, "backup_freshness")
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
        log.close()
    assert run is not None, (tmp_path / "daemon.log").read_text(errors="replace")[-3000:]
    assert run.tags.get("dagster/schedule_name") == "hourly_freshness"
    assert run.status == DagsterRunStatus.FAILURE
    (failure,) = instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE)
    data = failure.dagster_event.step_failure_data if failure.dagster_event else None
    assert data is not None and data.user_failure_data is not None
    assert (
        data.user_failure_data.description == "no backup set is registered: backups have never arrived here"
    )


def _wait_for_finished_run(instance: DagsterInstance, job_name: str) -> DagsterRun | None:
    """The first finished run of `job_name`, waiting for it at most DEADLINE_SECONDS."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    finished = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE]
    while time.monotonic() < deadline:
        runs = instance.get_runs(RunsFilter(job_name=job_name, statuses=finished))
        if runs:
            return runs[0]
        time.sleep(1)
    return None
