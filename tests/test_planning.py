"""plan-generate on a real backup set: the environment read from the ISOs, adapted, written, stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from omni_recovery.adapt.inventory import inventory_to_yaml, make_inventory
from omni_recovery.backupset.signing import load_signing_key
from omni_recovery.cli import main
from omni_recovery.db.connection import connect
from omni_recovery.envstate.folder import environment_from_folder
from omni_recovery.plan.generate import generate, open_set, read_set_environment
from tests.backupset.conftest import DemoSet
from tests.builders import same_shaped_inventory
from tests.checker.tamper import copy_set, iso_file, rebuild
from transforms.plan import plan_from_yaml


def test_environment_read_from_the_set_equals_the_folder(demo_set: DemoSet):
    with open_set(str(demo_set.output)) as readers:
        source = read_set_environment(readers)
    folder = environment_from_folder(demo_set.env)
    assert source.backup_set_id == demo_set.summary.backup_set_id
    assert source.environment.directors == folder.directors
    assert source.environment.applications == folder.applications
    assert source.environment.volumes == folder.volumes
    assert "keys/ca.key" not in source.documents, "sealed files are not planning documents"
    assert ("keys/ca.key", "file", 0o100600) in source.entries


def test_plan_generate_writes_yaml_and_svg_and_stores_the_plan(
    demo_set: DemoSet, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("OMNI_RECOVERY_DATABASE_URL", database_url)
    inventory = same_shaped_inventory(demo_set.env, tmp_path)
    output = tmp_path / "plans" / "recovery-plan.yaml"
    args = [
        "plan-generate",
        "--path",
        str(demo_set.output),
        "--inventory",
        str(inventory),
        "--output",
        str(output),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "steps" in result.output and "recorded in the recovery database as" in result.output
    plan = plan_from_yaml(output.read_text())
    assert not plan.edited and plan.backup_set_id == demo_set.summary.backup_set_id
    assert output.with_suffix(".svg").read_text().startswith("<svg")
    with connect(database_url) as conn:
        stored = conn.execute(
            "SELECT plan_sha256, (SELECT count(*) FROM omni.adaptations a WHERE a.plan_id = p.plan_id) "
            "FROM omni.recovery_plans p WHERE backup_set_id = %s AND plan_sha256 = %s",
            (plan.backup_set_id, plan.sha256),
        ).fetchall()
    # other tests may plan the same shared set onto other inventories: this plan's row is what counts
    assert stored == [(plan.sha256, len(plan.adaptations))]
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    with connect(database_url) as conn:
        count = conn.execute(
            "SELECT count(*) FROM omni.recovery_plans WHERE backup_set_id = %s AND plan_sha256 = %s",
            (plan.backup_set_id, plan.sha256),
        ).fetchone()
    assert count == (1,), "the same plan is stored once"


def test_too_small_inventory_is_refused_by_how_much(demo_set: DemoSet, tmp_path: Path):
    small = tmp_path / "small.yaml"
    small.write_text(inventory_to_yaml(make_inventory([(f"tiny-{i}", 4, 8192, 500) for i in range(3)])))
    result = CliRunner().invoke(
        main,
        [
            "plan-generate",
            "--path",
            str(demo_set.output),
            "--inventory",
            str(small),
            "--output",
            str(tmp_path / "p.yaml"),
            "--no-store",
        ],
    )
    assert result.exit_code == 1
    assert "short by" in result.output
    assert not (tmp_path / "p.yaml").exists()


def test_generate_is_deterministic(demo_set: DemoSet, tmp_path: Path):
    inventory = same_shaped_inventory(demo_set.env, tmp_path)
    first, _ = generate(str(demo_set.output), inventory, "advanced")
    second, _ = generate(str(demo_set.output), inventory, "advanced")
    assert first.sha256 == second.sha256


def test_a_document_the_reader_cannot_use_is_named_with_its_iso_and_path(demo_set: DemoSet, tmp_path: Path):
    folder = copy_set(demo_set.output, tmp_path / "set")
    iso = iso_file(folder, "director-state")
    path = "data/directors/dir-1/state.json"
    rebuild(iso, load_signing_key(demo_set.key_path), replace={path: b'{"vms": [{"name": "no id"}]}'})
    inventory = same_shaped_inventory(demo_set.env, tmp_path)
    args = [
        "plan-generate",
        "--path",
        str(folder),
        "--inventory",
        str(inventory),
        "--output",
        str(tmp_path / "p.yaml"),
    ]
    result = CliRunner().invoke(main, [*args, "--no-store"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{iso.name}: {path}: malformed" in result.output, result.output
    assert not (tmp_path / "p.yaml").exists()
