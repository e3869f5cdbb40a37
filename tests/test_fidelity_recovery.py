"""Format 1.1 through the whole flow: the catalog answers owner and hole questions, and execute-plan
brings owners, xattrs, hard links, holes and nanosecond mtimes back onto the new storage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from omni_recovery.db.connection import connect
from omni_recovery.envstate.demo import DemoOptions, write_demo_environment
from omni_recovery.register.catalog_sql import run_query
from pipelines.runner import register_isos
from tests.backupset.conftest import DemoSet
from tests.catalog_fixtures import scratch_settings
from tests.restorer.test_fidelity import NS_MTIME, GiB, make_tree, observe
from tests.test_recovery import latest_run, recovered, write_set

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="giving files to other owners needs root")


@pytest.fixture
def workspace(tmp_path: Path, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OMNI_RECOVERY_DATABASE_URL", fresh_database_url)
    return tmp_path / "ws"


@pytest.fixture(scope="module")
def fidelity_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoSet, str]:
    """A set (id fid) of a small demo environment whose first volume holds the issue's tree."""
    work = tmp_path_factory.mktemp("fidelity-flow")
    env = work / "env"
    write_demo_environment(env, DemoOptions(volume_scale="tiny", applications=2, seed=5))
    volume = sorted((env / "volumes").glob("*/*/files"))[0]
    make_tree(volume / "fidelity")
    return write_set(env, work, "fid"), volume.relative_to(env).as_posix() + "/fidelity"


def test_the_catalog_answers_who_owns_what_and_how_many_bytes_are_holes(
    fidelity_demo: tuple[DemoSet, str], fresh_database_url: str, tmp_path_factory: pytest.TempPathFactory
):
    demo, tree = fidelity_demo
    with scratch_settings(tmp_path_factory, "fidelity-catalog", fresh_database_url) as settings:
        register_isos(str(demo.output), settings)
        holes = run_query(str(settings.catalog), "SELECT sum(logical_size - size) FROM files WHERE sparse")[1]
    assert holes == [(GiB - (256 << 10),)]
    with connect(fresh_database_url) as conn:
        owned = conn.execute("SELECT path FROM omni.files WHERE uid = 999 ORDER BY path").fetchall()
        links = conn.execute(
            "SELECT path, hardlink, size FROM omni.files WHERE hardlink IS NOT NULL"
        ).fetchall()
        users = conn.execute("SELECT DISTINCT owner_user FROM omni.files WHERE uid = 0").fetchall()
    assert [p for (p,) in owned] == [f"data/{tree}/private", f"data/{tree}/private/secret"]
    assert sorted(links) == [
        (f"data/{tree}/private/three", f"data/{tree}/one", 0),
        (f"data/{tree}/two", f"data/{tree}/one", 0),
    ]
    assert users == [("root",)]


def test_execute_plan_restores_the_tree_as_it_was(
    fidelity_demo: tuple[DemoSet, str], tmp_path: Path, workspace: Path, fresh_database_url: str
):
    demo, tree = fidelity_demo
    setup, _ = recovered(demo, tmp_path / "recovery", workspace, fresh_database_url)
    restored = [p for p in (setup.folder / "infra").rglob("fidelity") if p.is_dir()]
    assert len(restored) == 1, restored
    want, got = observe(demo.env / tree), observe(restored[0])
    assert sorted(got) == sorted(want)
    for rel, seen in want.items():
        assert got[rel] == seen, rel
    assert got["precise"].mtime_ns == NS_MTIME + 1 and got["one"].inode_names == {
        "one",
        "two",
        "private/three",
    }
    assert os.stat(restored[0] / "disk.img").st_blocks * 512 < 1 << 20
    # The free-space check and the bytes written count what is stored: the 1 GiB of holes takes no room.
    steps = {s.step_id: s for s in latest_run(fresh_database_url).steps}
    volume = next(
        s for step_id, s in steps.items() if step_id.startswith("volume/") and tree.split("/")[1] in step_id
    )
    assert volume.bytes_written < 1 << 20
    assert all(
        s.detail["bytes_to_write"] < GiB for step_id, s in steps.items() if step_id.startswith("storage/")
    )
