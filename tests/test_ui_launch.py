"""A restore launched from the Dagster UI is built as execute-plan builds it: refused before any work,
naming why, when it cannot work, and a run a step stops has its report, as on the command line.

Each launch is the real `restore` job of the code location's definitions, run in a real Dagster
instance with the `recovery` resource configured as the launchpad configures it (the passphrase
from the code location's environment), against a real set and the real recovery database."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterEvent, DagsterInstance
from dagster._core.events import JobFailureData
from dagster._utils.error import SerializableErrorInfo

from omni_recovery.backupset.signing import load_signing_key
from omni_recovery.db.connection import connect
from omni_recovery.settings import load_settings
from omni_recovery.validate import store, validate
from pipelines.definitions import build_definitions
from pipelines.sensors import RANGE_END_TAG, RANGE_START_TAG
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.checker.tamper import copy_set, rebuild
from tests.test_hostile_documents import CASES, _holder
from tests.test_recovery import (  # noqa: F401
    Setup,
    copied,
    damaged_stop_volume,
    make_setup,
    validated,
    workspace,
    write_set,
)
from tests.test_root_safety import run_count


def launch(setup: Setup, folder: Path, config: dict[str, Any], apps: list[str]) -> tuple[bool, str]:
    """The `restore` job over the application partitions `apps`, as the UI launches it: whether it
    succeeded, and the messages of its failure events."""
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("applications", apps)
    result = (
        build_definitions(load_settings(folder))
        .resolve_job_def("restore")
        .execute_in_process(
            instance=instance,
            run_config={"resources": {"recovery": {"config": config}}},
            tags={RANGE_START_TAG: apps[0], RANGE_END_TAG: apps[-1]},
            raise_on_error=False,
        )
    )
    failures = " ".join(str(e.event_specific_data) for e in result.all_events if e.is_failure)
    if not any(e.event_type_value == "STEP_START" for e in result.all_events):  # refused at its start:
        errors = run_errors(result.all_events)
        assert errors, "the run's failure carries its refusal"
        for error in errors:  # the refusal's one line, not Dagster's wrapper of it
            assert error.cls_name == "LaunchRefused" and error.cause is None, error
            assert len(error.message.strip().splitlines()) == 1, error.message
    return result.success, failures


def run_errors(events: Sequence[DagsterEvent]) -> list[SerializableErrorInfo]:
    """The errors the run's failure event carries (the refusal, for a run refused at its start)."""
    failures = [e.event_specific_data for e in events if e.event_type_value == "PIPELINE_FAILURE"]
    return [f.error for f in failures if isinstance(f, JobFailureData) and f.error is not None]


def applications(setup: Setup) -> list[str]:
    return sorted(s.id.split("/", 1)[1] for s in setup.plan.steps if s.id.startswith("application/"))


def no_plan(setup: Setup, tmp_path: Path, env: pytest.MonkeyPatch) -> tuple[dict[str, str], list[str]]:
    return {}, applications(setup)


def a_plan_without_its_record(
    setup: Setup, tmp_path: Path, env: pytest.MonkeyPatch
) -> tuple[dict[str, str], list[str]]:
    moved = tmp_path / "elsewhere" / "recovery-plan.yaml"
    moved.parent.mkdir()
    shutil.copy(setup.plan_path, moved)
    return {"plan_path": str(moved)}, applications(setup)


def an_unknown_application(
    setup: Setup, tmp_path: Path, env: pytest.MonkeyPatch
) -> tuple[dict[str, str], list[str]]:
    return {"plan_path": str(setup.plan_path)}, ["no-such-application"]


def a_wrong_passphrase(
    setup: Setup, tmp_path: Path, env: pytest.MonkeyPatch
) -> tuple[dict[str, str], list[str]]:
    env.setenv("OMNI_RECOVERY_PASSPHRASE", "not the passphrase")
    return {"plan_path": str(setup.plan_path)}, applications(setup)


Case = Callable[[Setup, Path, pytest.MonkeyPatch], tuple[dict[str, str], list[str]]]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        (no_plan, "configure resources.recovery.config.plan_path"),
        (a_plan_without_its_record, "no record of its backup set and inventory.*location and inventory_path"),
        (an_unknown_application, "unknown application.*no-such-application"),
        (a_wrong_passphrase, "passphrase"),
    ],
    ids=lambda value: value.__name__ if callable(value) else "",
)
def test_a_ui_launch_that_cannot_work_is_refused_before_any_work_naming_why(
    validated: DemoSet,  # noqa: F811
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    case: Case,
    reason: str,
):
    setup = make_setup(validated, tmp_path / "s")
    monkeypatch.setenv("OMNI_RECOVERY_PASSPHRASE", PASSPHRASE.decode())
    runs = run_count(database_url)
    config, apps = case(setup, tmp_path, monkeypatch)
    succeeded, failures = launch(setup, workspace, {"workspace": str(workspace), **config}, apps)
    assert not succeeded
    assert re.search(reason, failures), failures
    assert run_count(database_url) == runs, "no recovery run was opened"
    assert not (tmp_path / "s" / "infra").exists(), "nothing was written"


def test_a_ui_launch_of_an_unvalidated_set_is_refused_before_any_work(
    demo_env: Path,
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
):
    setup = make_setup(write_set(demo_env, tmp_path, "never-validated-ui"), tmp_path / "s")
    monkeypatch.setenv("OMNI_RECOVERY_PASSPHRASE", PASSPHRASE.decode())
    runs = run_count(database_url)
    config = {"workspace": str(workspace), "plan_path": str(setup.plan_path)}
    succeeded, failures = launch(setup, workspace, config, applications(setup))
    assert not succeeded and "no deep validation on record" in failures, failures
    assert run_count(database_url) == runs
    assert not (tmp_path / "s" / "infra").exists()


def test_a_ui_run_a_step_stops_has_its_report_that_says_how_to_resume(
    copied: DemoSet,  # noqa: F811
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
):
    setup, step = damaged_stop_volume(copied, tmp_path)
    monkeypatch.setenv("OMNI_RECOVERY_PASSPHRASE", PASSPHRASE.decode())
    config = {"workspace": str(workspace), "plan_path": str(setup.plan_path)}
    succeeded, failures = launch(setup, workspace, config, applications(setup))
    assert not succeeded and f"step {step.id} failed" in failures, failures
    report = re.search(r"The report: (/\S+?\.html)", failures)
    assert report, failures
    page = Path(report[1]).read_text()
    assert page.index("FAILED") < page.index(step.id) < page.index("Resume this run")
    assert f"--plan {setup.plan_path}" in page


def test_a_ui_launch_on_a_hostile_document_fails_in_one_line_naming_the_iso_and_path(
    demo_set: DemoSet,
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
):
    suffix, content, refusal = CASES["a Director config of odd types"]  # refused by the restore layout
    folder = copy_set(demo_set.output, tmp_path / "set")
    iso, path = _holder(folder, suffix)
    rebuild(iso, load_signing_key(demo_set.key_path), replace={path: content})
    hostile = replace(demo_set, output=folder)
    report = validate(str(folder), demo_set.trusted, PASSPHRASE, deep=True)
    assert report.passed, "the set is whole and authentic: only its content is odd"
    with connect(database_url) as conn:
        store(conn, report)
    setup = make_setup(hostile, tmp_path / "s")
    monkeypatch.setenv("OMNI_RECOVERY_PASSPHRASE", PASSPHRASE.decode())
    config = {"workspace": str(workspace), "plan_path": str(setup.plan_path)}
    succeeded, failures = launch(setup, workspace, config, applications(setup))
    assert not succeeded
    assert refusal is not None and refusal in failures, failures
    assert f"{iso.name}: {path}: " in failures, failures
    assert "Traceback" not in failures, failures
