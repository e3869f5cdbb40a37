"""A set whose ISO images another tool made is validated and recovered like one of ours.

The images are remade by libarchive's ISO 9660 writer (`bsdtar --format iso9660`: Rock Ridge and
Joliet, its own directory order and extent placement, and its `rr=useful` modes, 0444 for
files) from the files of the demo set's images, byte for byte. Nothing of the set's own
metadata changes, so signatures, digests and chunked files (parts spread over several
volume-data ISOs) stay valid: what differs is only how the images are laid out, which the reader
must follow by the standard alone.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from omni_recovery.backupset.reader import IsoReader
from omni_recovery.checker import store, validate
from omni_recovery.db.connection import connect
from omni_recovery.db.schema import init_database
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.test_recovery import digests, execute, make_setup, restored_tree

pytestmark = pytest.mark.skipif(shutil.which("bsdtar") is None, reason="needs bsdtar (libarchive-tools)")


@pytest.fixture
def workspace(tmp_path: Path, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OMNI_RECOVERY_DATABASE_URL", fresh_database_url)
    return tmp_path / "ws"


def remade_by_libarchive(demo: DemoSet, folder: Path) -> DemoSet:
    """The demo set with every ISO extracted and written again by libarchive."""
    output = folder / "set"
    output.mkdir(parents=True)
    for iso in sorted(demo.output.glob("*.iso")):
        tree = folder / "trees" / iso.stem
        tree.mkdir(parents=True)
        subprocess.run(["bsdtar", "-xf", str(iso), "-C", str(tree)], check=True)
        subprocess.run(
            ["bsdtar", "-c", "--format", "iso9660", "-f", str(output / iso.name), "-C", str(tree), "."],
            check=True,
        )
    return dataclasses.replace(demo, output=output)


def test_a_set_remade_by_libarchive_validates_and_restores_the_same(
    demo_set: DemoSet, tmp_path: Path, fresh_database_url: str, workspace: Path
) -> None:
    foreign = remade_by_libarchive(demo_set, tmp_path / "foreign")
    ours = {iso.name: iso.read_bytes() for iso in demo_set.output.glob("*.iso")}
    theirs = {iso.name: iso.read_bytes() for iso in foreign.output.glob("*.iso")}
    assert ours.keys() == theirs.keys() and all(ours[n] != theirs[n] for n in ours)
    with IsoReader(str(next(foreign.output.glob("*_volume-data_001.iso")))) as reader:
        assert any(entry.chunk for entry in reader.manifest.files), "the set holds chunked files"

    report = validate(str(foreign.output), foreign.trusted, PASSPHRASE, deep=True)
    assert report.passed, report.to_text()
    assert {p.check for p in report.problems} == {"modes"}, "only the images' own modes differ"
    init_database(fresh_database_url)
    with connect(fresh_database_url) as conn:
        store(conn, report)

    setup = make_setup(foreign, tmp_path / "restore")
    summary = execute(setup, workspace)
    assert summary.report and "SUCCEEDED" in Path(summary.report).read_text()

    source = digests(demo_set.env)
    restored = restored_tree(setup.plan, tmp_path / "gathered")
    data = [p for p in source if (p.startswith("volumes/") and "/files" in p) or p.endswith(".jsonl")]
    assert data and all(restored.get(p) == source[p] for p in data), "data restored byte for byte"
    for path in data:
        if source[path] != "dir" and not source[path].startswith("symlink:"):
            wanted = stat.S_IMODE(os.lstat(demo_set.env / path).st_mode)
            got = stat.S_IMODE(os.lstat(tmp_path / "gathered" / path).st_mode)
            assert got == wanted, f"{path}: mode {got:o}, the manifest says {wanted:o}"
