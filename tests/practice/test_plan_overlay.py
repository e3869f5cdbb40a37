"""The plan overlay: the next recovery's recommendations written by `omni performance optimize
--apply-recommendations`, carried by the next plan that `plan-generate` writes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from omni_recovery.cli import main
from omni_recovery.db.connection import connect
from omni_recovery.errors import RecoveryError
from omni_recovery.plan.overlay import (
    overlay_from,
    overlay_path,
    read_overlay,
    recommended_parallel_factor,
    write_overlay,
)
from omni_recovery.validate import store, validate
from tests.backupset.conftest import DemoSet
from tests.builders import same_shaped_inventory
from tests.demo_fixtures import PASSPHRASE, extra_set
from transforms.plan import plan_from_yaml
from transforms.recommendations import StepRow, parallelism


def plan_generate(demo_set: DemoSet, workspace: Path, folder: Path) -> Path:
    folder.mkdir(parents=True)
    output = folder / "recovery-plan.yaml"
    args = ["plan-generate", "--path", str(demo_set.output), "--no-store", "--output", str(output)]
    args += ["--inventory", str(same_shaped_inventory(demo_set.env, folder)), "--workspace", str(workspace)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return output


@pytest.mark.parametrize(("factor", "suggested"), [(2, 4), (8, 2)])
def test_the_next_plan_carries_the_parallel_factor_the_last_run_suggested(
    demo_set: DemoSet,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    factor: int,
    suggested: int,
):
    monkeypatch.setenv("OMNI_RECOVERY_DATABASE_URL", database_url)
    workspace = tmp_path / "ws"
    # Two steps of 2 s each over 2 s of wall time: 2 slots busy.
    found = parallelism([StepRow("a", "volumes", 2.0, 1), StepRow("b", "volumes", 2.0, 1)], factor, 2.0)
    assert [r.evidence["suggested"] for r in found] == [suggested]
    before = plan_from_yaml(plan_generate(demo_set, workspace, tmp_path / "before").read_text())
    assert recommended_parallel_factor(before.adaptations) is None, "no overlay, nothing recommended"

    write_overlay(workspace, overlay_from(found))
    plan = plan_from_yaml(plan_generate(demo_set, workspace, tmp_path / "after").read_text())

    (line,) = [a for a in plan.adaptations if a.kind == "recommendation"]
    assert (line.subject, line.new) == ("execute-plan --parallel-factor", str(suggested))
    assert str(overlay_path(workspace)) in line.reason and found[0].message in line.reason
    assert recommended_parallel_factor(plan.adaptations) == suggested
    assert not plan.edited


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("- 4\n", "expected a mapping"),
        ("parallel_factor: 0\n", "parallel_factor: expected a whole number 1..64"),
        ("parallel_factor: four\n", "parallel_factor: expected a whole number 1..64"),
        ("parallel_factor: [4\n", "not YAML"),
    ],
)
def test_a_malformed_overlay_is_refused_in_one_line_naming_the_file(
    tmp_path: Path, text: str, complaint: str
):
    overlay_path(tmp_path).write_text(text)
    with pytest.raises(RecoveryError) as refused:
        read_overlay(tmp_path)
    assert str(refused.value).startswith(f"{overlay_path(tmp_path)}: ") and complaint in str(refused.value)
    assert "\n" not in str(refused.value)


def test_execute_plan_without_a_parallel_factor_takes_the_plans_recommendation(
    demo_set: DemoSet,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
):
    monkeypatch.setenv("OMNI_RECOVERY_DATABASE_URL", database_url)
    monkeypatch.setenv("OMNI_RECOVERY_PASSPHRASE", PASSPHRASE.decode())
    location = extra_set(demo_set, tmp_path_factory, "overlaid", "ovl1")  # its own plans and runs
    with connect(database_url) as conn:
        store(conn, validate(str(location), demo_set.trusted, PASSPHRASE, deep=True))
    workspace = tmp_path / "ws"
    write_overlay(workspace, {"parallel_factor": 3})
    plan_path = plan_generate(dataclasses.replace(demo_set, output=location), workspace, tmp_path / "plan")

    result = CliRunner().invoke(
        main, ["execute-plan", "--plan", str(plan_path), "--workspace", str(workspace)]
    )

    assert result.exit_code == 0, result.output
    assert "--parallel-factor 3: the plan's recommendation" in result.output
    with connect(database_url) as conn:
        (options,) = conn.execute(
            "SELECT r.options FROM omni.recovery_runs r JOIN omni.recovery_plans p USING (plan_id) "
            "WHERE p.backup_set_id = 'ovl1'"
        ).fetchone() or (None,)
    assert options["parallel_factor"] == 3
