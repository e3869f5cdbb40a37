"""`omni-recovery drill` on real signed, encrypted sets, the real database and real Dagster runs."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from omni_recovery.cli import main
from omni_recovery.db.connection import connect
from tests.checker.tamper import damage_a_volume_file
from tests.demo_fixtures import PASSPHRASE, DemoSet, extra_set

DRILLED = "dr1"  # its own set id: the session database's plans of t1 belong to other tests


@pytest.fixture(scope="module")
def drilled(demo_set: DemoSet, tmp_path_factory: pytest.TempPathFactory) -> DemoSet:
    """A set of the demo environment of its own (id dr1), signed by the demo set's key."""
    return dataclasses.replace(demo_set, output=extra_set(demo_set, tmp_path_factory, "drilled", DRILLED))


@pytest.fixture
def workspace(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OMNI_RECOVERY_DATABASE_URL", database_url)
    monkeypatch.setenv("OMNI_RECOVERY_PASSPHRASE", PASSPHRASE.decode())
    return tmp_path / "ws"


def run_drill(demo: DemoSet, location: Path, workspace: Path, *extra: str) -> tuple[int, str]:
    args = ["drill", "--path", str(location), "--trusted-key", f"{demo.key_path}.pub"]
    result = CliRunner().invoke(main, [*args, "--workspace", str(workspace), *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def drill_row(database_url: str, backup_set_id: str) -> tuple[object, ...]:
    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT passed, failed_stage, error, durations, bytes_restored, projected_seconds, kept_scratch "
            "FROM omni.drills WHERE backup_set_id = %s ORDER BY started_at DESC LIMIT 1",
            (backup_set_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_a_drill_of_the_demo_set_passes_and_leaves_nothing_behind(
    drilled: DemoSet, workspace: Path, database_url: str
):
    code, output = run_drill(drilled, drilled.output, workspace)

    verdict = output.strip().splitlines()[-1]
    assert code == 0, output
    assert verdict.startswith("drill drill-") and ": PASSED (" in verdict
    for stage in ("register", "validate", "plan", "execute", "compare", "report"):
        assert f"{stage} " in verdict
    assert "a real recovery of this set on this site: about" in verdict
    passed, failed_stage, error, durations, restored, projected, kept = drill_row(database_url, DRILLED)
    assert (passed, failed_stage, error, kept) == (True, None, None, None)
    assert isinstance(durations, dict)
    assert set(durations) == {"register", "validate", "plan", "execute", "compare", "report"}
    volume_bytes = sum(
        f.stat().st_size
        for f in drilled.env.glob("volumes/*/*/files/**/*")
        if f.is_file() and not f.is_symlink()
    )
    assert restored == volume_bytes > 0
    assert isinstance(projected, float) and projected > 0
    # Nothing is left of the scratch site, the restored copy or the run's working folder.
    assert nothing_in(workspace / "drills") and nothing_in(workspace / "runs")


def test_a_drill_of_a_set_with_one_damaged_byte_fails_naming_the_iso_and_path(
    drilled: DemoSet, workspace: Path, tmp_path: Path, database_url: str
):
    damaged = shutil.copytree(drilled.output, tmp_path / "damaged")
    iso, path = damage_a_volume_file(damaged)

    code, output = run_drill(drilled, damaged, workspace)

    assert code == 1
    verdict = output.strip().splitlines()[-1]
    assert ": FAILED at validate: deep validation failed: " in verdict
    assert f"{iso.name}: {path}: " in verdict
    passed, failed_stage, error, durations, _, projected, _ = drill_row(database_url, DRILLED)
    assert (passed, failed_stage, projected) == (False, "validate", None)
    assert iso.name in str(error) and path in str(error)
    assert isinstance(durations, dict) and set(durations) == {"register", "validate"}
    assert nothing_in(workspace / "drills")


def test_keep_leaves_the_scratch_targets_and_says_where(drilled: DemoSet, workspace: Path):
    code, output = run_drill(drilled, drilled.output, workspace, "--keep")

    assert code == 0, output
    kept = next(line for line in output.splitlines() if line.startswith("scratch targets kept in "))
    folder = Path(kept.removeprefix("scratch targets kept in "))
    assert (folder / "recovery-plan.yaml").is_file()
    assert any((folder / "site").rglob("*.yaml")), "the restored site is still there"


def site_inventory(demo_set: DemoSet, folder: Path) -> Path:
    """An inventory of a test site under `folder`/site shaped like the demo's nodes."""
    from omni_recovery.adapt.inventory import inventory_to_yaml, make_inventory
    from omni_recovery.envstate.folder import environment_from_folder

    nodes = [
        (f"t-{n.name}", n.cpu_cores, n.memory_mib, n.disk_gib)
        for n in environment_from_folder(demo_set.env).nodes
    ]
    inventory = folder / "inventory.yaml"
    inventory.write_text(
        inventory_to_yaml(make_inventory(nodes, root=(folder / "site").as_uri())), encoding="utf-8"
    )
    return inventory


def test_a_drill_on_a_test_site_restores_there_and_empties_its_roots_after(
    drilled: DemoSet, workspace: Path, tmp_path: Path
):
    inventory = site_inventory(drilled, tmp_path)
    (tmp_path / "site" / "storage" / "fast").mkdir(parents=True)  # an empty root is fine

    code, output = run_drill(drilled, drilled.output, workspace, "--inventory", str(inventory))

    assert code == 0, output
    assert ": PASSED (" in output.splitlines()[-1]
    assert not [p for p in (tmp_path / "site").rglob("*") if p.is_file()], "nothing restored is left"


def test_a_test_site_whose_roots_hold_anything_is_refused_before_anything_is_written(
    drilled: DemoSet, workspace: Path, tmp_path: Path
):
    site = tmp_path / "site"
    inventory = site_inventory(drilled, tmp_path)
    precious = site / "storage" / "fast" / "precious.txt"
    precious.parent.mkdir(parents=True)
    precious.write_text("not the drill's")

    code, output = run_drill(drilled, drilled.output, workspace, "--inventory", str(inventory))

    assert code == 1
    assert "FAILED at plan: " in output and "is not empty" in output and str(inventory) in output
    assert precious.read_text() == "not the drill's"
    assert sorted(p.name for p in site.rglob("*")) == ["fast", "precious.txt", "storage"]


def nothing_in(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())
