"""The practice schedules and jobs: evaluated through Dagster's test contexts and run for real."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import DagsterInstance, ExecuteInProcessResult, RunRequest, build_schedule_context

from omni_recovery.db.connection import connect
from omni_recovery.db.schema import init_database
from omni_recovery.settings import Settings
from pipelines.definitions import defs
from pipelines.runner import QUIET_CONSOLE, register_isos
from pipelines.schedules import (
    PracticeResource,
    _schedule,
    backup_freshness,
    recovery_drill,
    rotating_verification,
)
from tests.checker.tamper import damage_a_volume_file
from tests.demo_fixtures import PASSPHRASE, DemoSet, extra_set


@pytest.fixture
def secrets(demo_set: DemoSet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNI_RECOVERY_PASSPHRASE", PASSPHRASE.decode())
    monkeypatch.setenv("OMNI_RECOVERY_TRUSTED_KEY", f"{demo_set.key_path}.pub")


def failure_of(result: ExecuteInProcessResult) -> str:
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert event.step_failure_data is not None and event.step_failure_data.user_failure_data is not None
    data = event.step_failure_data.user_failure_data
    return f"{data.description} [{data.metadata['failing_check'].value}]"


@pytest.mark.parametrize(
    ("name", "job"),
    [("nightly_verification", "rotating_verification"), ("weekly_drill", "recovery_drill"),
     ("hourly_freshness", "backup_freshness")],
)  # fmt: skip
def test_each_schedule_requests_a_run_of_its_job(name: str, job: str):
    schedule = defs.resolve_schedule_def(name)
    context = build_schedule_context(scheduled_execution_time=datetime(2026, 12, 6, 4, 0, tzinfo=UTC))
    requests = schedule.evaluate_tick(context).run_requests
    assert requests is not None and len(requests) == 1 and isinstance(requests[0], RunRequest)
    assert schedule.job_name == job


def test_a_schedule_takes_its_cron_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OMNI_RECOVERY_DRILL_CRON", "30 3 * * 6")
    assert (
        _schedule("weekly_drill", recovery_drill, "OMNI_RECOVERY_DRILL_CRON", "0 4 * * 0").cron_schedule
        == "30 3 * * 6"
    )
    monkeypatch.delenv("OMNI_RECOVERY_DRILL_CRON")
    assert (
        _schedule("weekly_drill", recovery_drill, "OMNI_RECOVERY_DRILL_CRON", "0 4 * * 0").cron_schedule
        == "0 4 * * 0"
    )


def practice(workspace: Path, database_url: str, **knobs: object) -> dict[str, PracticeResource]:
    return {"practice": PracticeResource(workspace=str(workspace), database_url=database_url, **knobs)}  # type: ignore[arg-type]


def registered_set(
    demo_set: DemoSet, factory: pytest.TempPathFactory, backup_set_id: str, workspace: Path, database_url: str
) -> Path:
    """A new set of the demo environment, registered in `workspace` (real Dagster runs)."""
    location = extra_set(demo_set, factory, backup_set_id, backup_set_id)
    register_isos(str(location), Settings(workspace, database_url), log_level=QUIET_CONSOLE)
    return location


def test_the_nightly_verification_rotates_and_a_damaged_slice_fails_the_run_naming_iso_and_path(
    demo_set: DemoSet,
    secrets: None,
    tmp_path: Path,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
):
    workspace = tmp_path / "ws"
    location = registered_set(demo_set, tmp_path_factory, "sch1", workspace, database_url)
    instance = DagsterInstance.ephemeral()
    resources = practice(workspace, database_url, verify_slices=2)
    for _ in range(2):
        assert rotating_verification.execute_in_process(instance=instance, resources=resources).success
    with connect(database_url) as conn:
        done = conn.execute(
            "SELECT slice_index FROM omni.verification_slices WHERE backup_set_id = 'sch1' "
            "ORDER BY verified_at"
        ).fetchall()
    assert [row[0] for row in done] == [1, 2]

    iso, path = damage_a_volume_file(location)
    failures = []
    for _ in range(2):  # the damaged file is in one of the two slices
        result = rotating_verification.execute_in_process(
            instance=instance, resources=resources, raise_on_error=False
        )
        if not result.success:
            failures.append(failure_of(result))
    assert len(failures) == 1
    assert f"set sch1: {iso.name}: {path}: " in failures[0] and failures[0].endswith("[file_hashes]")


def test_freshness_fails_when_backups_have_stopped_and_passes_while_they_arrive(
    demo_set: DemoSet, secrets: None, tmp_path: Path, database_url: str, fresh_database_url: str
):
    from omni_recovery.validate import store, validate

    init_database(fresh_database_url)
    empty = backup_freshness.execute_in_process(
        resources=practice(tmp_path, fresh_database_url), raise_on_error=False
    )
    assert (
        failure_of(empty)
        == "no backup set is registered: backups have never arrived here [newest_set_is_fresh]"
    )
    with connect(fresh_database_url) as conn:
        store(conn, validate(str(demo_set.output), demo_set.trusted))
    fresh = backup_freshness.execute_in_process(
        resources=practice(tmp_path, fresh_database_url, max_set_age_hours=24 * 365)
    )
    assert fresh.success
    stale = backup_freshness.execute_in_process(
        resources=practice(tmp_path, fresh_database_url, max_set_age_hours=1e-6), raise_on_error=False
    )
    assert failure_of(stale).startswith("backups have stopped: the newest set, t1, was taken ")


def test_the_weekly_drill_job_drills_the_newest_registered_set(
    demo_set: DemoSet,
    secrets: None,
    tmp_path: Path,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
):
    workspace = tmp_path / "ws"
    location = registered_set(demo_set, tmp_path_factory, "drl1", workspace, database_url)
    result = recovery_drill.execute_in_process(resources=practice(workspace, database_url))
    assert result.success
    with connect(database_url) as conn:
        row = conn.execute("SELECT passed, location FROM omni.drills WHERE backup_set_id = 'drl1'").fetchone()
    assert row is not None and row[0] is True and Path(str(row[1]).removeprefix("file://")) == location

    damaged = shutil.copytree(location, tmp_path / "damaged")
    damage_a_volume_file(damaged)
    failed = recovery_drill.execute_in_process(
        resources=practice(workspace, database_url, drill_path=str(damaged)), raise_on_error=False
    )
    assert "FAILED at validate" in failure_of(failed) and failure_of(failed).endswith("[drill/validate]")
