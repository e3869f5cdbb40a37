"""Small pieces of the runner and the registry, without Dagster runs."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from omni_recovery.backupset.reader import list_backup_set
from omni_recovery.errors import BackupSetError, DatabaseError, RecoveryError
from pipelines.resources import BackupSetRegistry
from pipelines.runner import RegisterSummary, contiguous_ranges, user_error
from tests.catalog_fixtures import DemoSet


def test_contiguous_ranges() -> None:
    ordered = ["a", "b", "c", "d", "e", "f"]
    assert contiguous_ranges(ordered, ["b", "c", "d"]) == [("b", "d")]
    assert contiguous_ranges(ordered, ["a", "c", "f"]) == [("a", "a"), ("c", "c"), ("f", "f")]
    assert contiguous_ranges(ordered, ["e", "f", "a"]) == [("a", "a"), ("e", "f")]
    assert contiguous_ranges(ordered, []) == []


def test_user_error_finds_the_library_s_error_and_ends_on_a_looping_chain() -> None:
    ours, wrapper, loop_a, loop_b = DatabaseError("gone"), RuntimeError("step failed"), KeyError(1), OSError()
    wrapper.__cause__ = ours
    assert user_error(wrapper) is ours
    loop_a.__context__, loop_b.__context__ = loop_b, loop_a  # as psycopg's errors can leave them
    assert user_error(loop_a) is loop_a


def test_user_error_names_the_instance_folder_when_its_storage_fails(tmp_path: Path) -> None:
    home = tmp_path / "dagster"
    full, wrapper = sqlite3.OperationalError("database or disk is full"), RuntimeError("run failed")
    wrapper.__context__ = full
    said = user_error(wrapper, home)
    assert isinstance(said, RecoveryError) and str(said).startswith(f"{home}: ")
    assert "(database or disk is full)" in str(said)
    assert user_error(wrapper) is wrapper, "without the folder there is nothing to name"
    inside = OSError(errno.EFBIG, "File too large", str(home / "storage" / "x" / "compute_logs"))
    assert isinstance(user_error(inside, home), RecoveryError)
    elsewhere = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "set" / "a.iso"))
    assert user_error(elsewhere, home) is elsewhere, "a full output is not the instance's"


def test_summary_fits_one_screen() -> None:
    summary = RegisterSummary(
        ["s1"], {"system-core": 1, "volume-data": 4}, 5, 34, 46, 496, 1741986, 4073472, ["r1"]
    )
    lines = summary.lines()
    assert len(lines) < 12 and all(len(line) < 100 for line in lines)
    assert "5 (5 new)" in lines[1] and "system-core 1, volume-data 4" in lines[2] and "1.7 MiB" in lines[6]


def test_registry_round_trip_and_restore(demo_set: DemoSet, tmp_path: Path) -> None:
    registry = BackupSetRegistry(workspace=str(tmp_path))
    members = list_backup_set(str(demo_set.output))
    keys = registry.register(members)
    assert registry.lookup(keys[0])["url"] == members[0].url
    registry.restore(keys, {keys[0]: {"url": "file:///elsewhere", "size": 1}})
    assert set(registry.entries()) == {keys[0]} and registry.lookup(keys[0])["url"] == "file:///elsewhere"
    with pytest.raises(BackupSetError, match="register-isos"):
        registry.lookup(keys[1])


def test_sql_on_an_empty_workspace_says_to_register_first(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from omni_recovery.cli import main

    result = CliRunner().invoke(main, ["sql", "SELECT 1", "--workspace", str(tmp_path)])
    assert result.exit_code == 1 and "register-isos" in result.output


def test_format_result_table_csv_json() -> None:
    from omni_recovery.register.catalog_sql import format_result

    rows = [("a", 1, None), ("bb", 22, [1, 2])]
    table = format_result(["name", "n", "x"], rows, "table").splitlines()
    assert table[0].split() == ["name", "n", "x"] and table[-1] == "(2 rows)"
    assert format_result(["name", "n", "x"], rows, "csv").splitlines()[2] == 'bb,22,"[1, 2]"'
    assert (
        format_result(["name", "n", "x"], rows, "json").splitlines()[0] == '{"name": "a", "n": 1, "x": null}'
    )
