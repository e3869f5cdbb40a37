"""The set a command means is the set the operator means: the one registered last, a whole set, and
locations recorded so that they mean the same from any working folder.

Each case runs the real commands (register-isos, plan-generate, validate-isos, execute-plan) on
real demo sets into a fresh database of the embedded PostgreSQL.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from omni_recovery.cli import main
from omni_recovery.db.connection import connect
from omni_recovery.db.schema import init_database
from omni_recovery.register.registered_sets import registry_entries
from omni_recovery.settings import DATABASE_URL_ENV
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.builders import same_shaped_inventory
from tests.catalog_fixtures import scratch_workspace


@pytest.fixture
def workspace(
    tmp_path_factory: pytest.TempPathFactory, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    init_database(fresh_database_url)
    monkeypatch.setenv(DATABASE_URL_ENV, fresh_database_url)
    with scratch_workspace(tmp_path_factory, "registered") as folder:
        yield folder


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"OMNI_RECOVERY_PASSPHRASE": PASSPHRASE.decode()})


def register(location: str, workspace: Path) -> Result:
    return run_cli("register-isos", "--path", location, "--workspace", str(workspace), "--quiet")


def registration_times(database_url: str) -> dict[str, datetime]:
    with connect(database_url) as conn:
        rows = conn.execute("SELECT backup_set_id, registered_at FROM omni.backup_sets").fetchall()
    return dict(rows)


def planned_set(demo: DemoSet, workspace: Path, folder: Path) -> str:
    """The set plan-generate picks without --path (its first line names it)."""
    folder.mkdir()
    inventory = same_shaped_inventory(demo.env, folder)
    plan = folder / "plan.yaml"
    result = run_cli(
        "plan-generate",
        "--inventory",
        str(inventory),
        "-o",
        str(plan),
        "--no-store",
        "--workspace",
        str(workspace),
    )
    assert result.exit_code == 0, result.output
    return result.output.splitlines()[0]


def test_the_latest_set_is_the_one_registered_last(
    demo_set: DemoSet, second_set: Path, workspace: Path, fresh_database_url: str, tmp_path: Path
):
    assert register(str(demo_set.output), workspace).exit_code == 0
    first = registration_times(fresh_database_url)
    assert register(str(second_set), workspace).exit_code == 0
    second = registration_times(fresh_database_url)
    assert second["t1"] == first["t1"], "registering c2 changed when t1 was registered"
    assert second["c2"] > second["t1"]
    assert "planning registered backup set c2 in " in planned_set(demo_set, workspace, tmp_path / "a")

    assert register(str(demo_set.output), workspace).exit_code == 0  # t1 again: now the latest
    third = registration_times(fresh_database_url)
    assert third["c2"] == second["c2"] and third["t1"] > third["c2"]
    assert "planning registered backup set t1 in " in planned_set(demo_set, workspace, tmp_path / "b")


def test_a_folder_holding_fewer_isos_than_its_set_is_not_registered(
    demo_set: DemoSet, workspace: Path, fresh_database_url: str, tmp_path: Path
):
    whole = sorted(p.name for p in demo_set.output.glob("*.iso"))
    part = tmp_path / "part"
    part.mkdir()
    for name in whole[1:]:
        shutil.copy(demo_set.output / name, part / name)

    refused = register(str(part), workspace)

    assert refused.exit_code == 1, refused.output
    assert f"holds {len(whole) - 1} of the {len(whole)} ISOs of backup set t1; missing: {whole[0]}" in (
        refused.output
    )
    assert registry_entries(workspace) == {} and registration_times(fresh_database_url) == {}

    # The whole set registered from its folder stays registered there when a part of it is offered.
    assert register(str(demo_set.output), workspace).exit_code == 0
    before = registry_entries(workspace)
    assert register(str(part), workspace).exit_code == 1
    assert registry_entries(workspace) == before


def test_relative_paths_are_recorded_absolute_and_work_from_another_folder(
    demo_set: DemoSet,
    workspace: Path,
    fresh_database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    here = tmp_path / "here"
    here.mkdir()
    shutil.copytree(demo_set.output, here / "set")
    same_shaped_inventory(demo_set.env, here)
    monkeypatch.chdir(here)
    trust = ["--trusted-key", f"{demo_set.key_path}.pub"]
    validated = run_cli("validate-isos", "--path", "./set", "--deep", "--workspace", str(workspace), *trust)
    assert validated.exit_code == 0, validated.output
    made = run_cli(
        "plan-generate", "--path", "./set", "--inventory", "inventory.yaml", "-o", "plan.yaml",
        "--workspace", str(workspace),
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    recorded = json.loads((here / "plan.yaml.source.json").read_text())
    assert recorded == {
        "location": str(here / "set"),
        "inventory": str(here / "inventory.yaml"),
        "workspace": recorded["workspace"],
    }
    assert Path(recorded["workspace"]).is_absolute()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    executed = run_cli("execute-plan", "--plan", str(here / "plan.yaml"), "--workspace", str(workspace))
    assert executed.exit_code == 0, executed.output
    with connect(fresh_database_url) as conn:
        (options,) = conn.execute("SELECT options FROM omni.recovery_runs").fetchone() or (None,)
    assert options["plan"] == str(here / "plan.yaml"), options
    assert os.path.isabs(options["plan"])
