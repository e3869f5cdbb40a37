"""Rotating deep verification: slices of a real set's stored bytes, the recorded rotation, its coverage."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from omni_recovery.backupset.reader import IsoReader
from omni_recovery.cli import main
from omni_recovery.db.connection import connect
from omni_recovery.validate import validate
from omni_recovery.validate.deep import Slice, in_slice
from omni_recovery.validate.iso_checks import manifest_of
from tests.checker.tamper import flip_byte
from tests.demo_fixtures import PASSPHRASE, DemoSet, extra_set


@given(st.lists(st.integers(0, 10_000), max_size=60), st.integers(1, 12))
def test_every_unit_is_in_exactly_one_contiguous_slice_of_about_its_share(sizes: list[int], count: int):
    slices = [in_slice(sizes, k, count) for k in range(1, count + 1)]
    owners = [[k for k in range(count) if slices[k][i]] for i in range(len(sizes))]
    assert all(len(o) == 1 for o in owners), "each unit in exactly one slice"
    flat = [o[0] for o in owners]
    assert flat == sorted(flat), "slices are contiguous runs in stored order"
    biggest = max(sizes, default=0)
    for chosen in slices:
        assert (
            sum(s for s, inside in zip(sizes, chosen, strict=True) if inside) <= sum(sizes) / count + biggest
        )


def stored_files(location: Path) -> dict[tuple[str, str], int]:
    """(ISO, path) → size of every file every manifest of the set lists: the set's stored bytes."""
    found = {}
    for iso in sorted(location.glob("*.iso")):
        with IsoReader(str(iso)) as reader:
            for entry in manifest_of(reader) or []:
                if entry.type == "file":
                    found[iso.name, entry.path] = entry.size
    return found


class HashCounter:
    """The bytes a validation reports as read for hashing (its "hash" progress)."""

    def __init__(self) -> None:
        self.read = 0

    def __call__(self, phase: str, amount: int, total: int | None = None) -> None:
        if phase == "hash":
            self.read += amount


@pytest.mark.parametrize("count", [1, 3, 7])
def test_the_n_slices_of_a_set_read_every_stored_byte_exactly_once(demo_set: DemoSet, count: int):
    stored = sum(stored_files(demo_set.output).values())
    read_per_slice = []
    for k in range(1, count + 1):
        counter = HashCounter()
        report = validate(
            str(demo_set.output),
            demo_set.trusted,
            PASSPHRASE,
            deep=True,
            progress=counter,
            subset=Slice(k, count),
        )
        assert report.passed, report.to_text()
        assert report.subset is not None and report.subset.set_bytes == stored
        assert counter.read == report.subset.slice_bytes == report.bytes_hashed
        read_per_slice.append(counter.read)
    assert sum(read_per_slice) == stored
    if count > 1:
        assert max(read_per_slice) < stored, "no slice reads the whole set"


def test_a_damaged_byte_is_found_by_exactly_one_slice_naming_its_iso_and_path(
    demo_set: DemoSet, tmp_path: Path
):
    damaged = shutil.copytree(demo_set.output, tmp_path / "set")
    files = stored_files(damaged)
    plain = next(
        key for key in sorted(files) if "volume-data" in key[0] and "/files/" in key[1] and files[key]
    )
    part = next(key for key in sorted(files) if ".part" in key[1] or "chunk" in key[1])
    for iso, path in (plain, part):
        flip_byte(damaged / iso, path)
    found_by: Counter[tuple[str, str]] = Counter()
    for k in range(1, 5):
        report = validate(str(damaged), demo_set.trusted, PASSPHRASE, deep=True, subset=Slice(k, 4))
        found_by.update({(pr.iso or "", pr.path or "") for pr in report.blocking})
    assert found_by[plain] == 1 and found_by[part] == 1, found_by


@pytest.fixture
def workspace(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OMNI_RECOVERY_DATABASE_URL", database_url)
    monkeypatch.setenv("OMNI_RECOVERY_PASSPHRASE", PASSPHRASE.decode())
    return tmp_path / "ws"


def cli(workspace: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--workspace", str(workspace)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_auto_rotation_verifies_each_slice_once_in_n_runs_and_status_shows_the_coverage(
    demo_set: DemoSet, workspace: Path, database_url: str, tmp_path_factory: pytest.TempPathFactory
):
    location = str(extra_set(demo_set, tmp_path_factory, "rotation", "rot1"))
    validate_slice = ["validate-isos", "--path", location, "--deep", "--subset", "auto/3"]
    trusted = ["--trusted-key", f"{demo_set.key_path}.pub"]
    chosen = []
    for run in range(3):
        code, output = cli(workspace, *validate_slice, *trusted)
        assert code == 0, output
        chosen.append(output.splitlines()[0])
        if run == 0:
            assert "0% of" not in cli(workspace, "status", "--verification")[1]
            assert "never verified" in cli(workspace, "status", "--verification")[1]
    assert chosen == [f"verifying slice {k}/3 of the set's stored bytes" for k in (1, 2, 3)]
    code, output = cli(workspace, "status", "--verification")
    line = next(line for line in output.splitlines() if line.startswith("rot1 "))
    stored = sum(stored_files(Path(location)).values())
    assert f"100% of {stored} bytes verified (rotation over 3 slices)" in line
    assert "oldest verified byte checked " in line
    assert (
        cli(workspace, *validate_slice, *trusted)[1].splitlines()[0]
        == "verifying slice 1/3 of the set's stored bytes"
    )
    with connect(database_url) as conn:
        deep = conn.execute(
            "SELECT bool_or(deep) FROM omni.validation_runs WHERE backup_set_id = 'rot1'"
        ).fetchone()
    assert deep == (False,), "a slice run never stands for a whole deep validation"


def test_a_failing_slice_leaves_its_bytes_unverified(
    demo_set: DemoSet, workspace: Path, tmp_path_factory: pytest.TempPathFactory
):
    location = extra_set(demo_set, tmp_path_factory, "rotation-bad", "rot2")
    files = stored_files(location)
    iso, path = next(
        key for key in sorted(files) if "volume-data" in key[0] and "/files/" in key[1] and files[key]
    )
    flip_byte(location / iso, path)
    trusted = ["--trusted-key", f"{demo_set.key_path}.pub"]
    codes = [
        cli(workspace, "validate-isos", "--path", str(location), "--deep", "--subset", "auto/2", *trusted)[0]
        for _ in range(2)
    ]
    assert sorted(codes) == [0, 1]
    line = next(
        line
        for line in cli(workspace, "status", "--verification")[1].splitlines()
        if line.startswith("rot2 ")
    )
    assert "100%" not in line and "never verified (or their latest check failed)" in line


@pytest.mark.parametrize("given", ["3", "0/3", "4/3", "auto/0", "a/b"])
def test_a_malformed_subset_is_refused_in_one_line(demo_set: DemoSet, workspace: Path, given: str):
    code, output = cli(
        workspace, "validate-isos", "--path", str(demo_set.output), "--deep", "--subset", given
    )
    assert code == 1 and f"error: --subset {given}: give K/N" in output and "Traceback" not in output
