"""`omni-recovery validate-isos` driven in process: exit codes, the printed table, the JSON report and
the rows stored in the recovery database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from omni_recovery.cli import main
from omni_recovery.db.connection import connect
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.checker.tamper import copy_set, flip_byte, iso_file


@pytest.fixture
def database(fresh_database_url: str) -> str:
    """A database of its own (the command migrates it), so stored runs of set t1 meet no other test."""
    return fresh_database_url


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database: str, tmp_path: Path) -> Path:
    monkeypatch.setenv("OMNI_RECOVERY_DATABASE_URL", database)
    monkeypatch.delenv("OMNI_RECOVERY_TRUSTED_KEY", raising=False)
    monkeypatch.delenv("OMNI_RECOVERY_PASSPHRASE", raising=False)
    passphrase = tmp_path / "passphrase"
    passphrase.write_bytes(PASSPHRASE + b"\n")
    return passphrase


def stored(database_url: str, run_id: str) -> tuple[tuple[object, ...], list[tuple[object, ...]]]:
    with connect(database_url) as conn:
        run = conn.execute(
            "SELECT backup_set_id, deep, passed FROM omni.validation_runs WHERE run_id = %s", (run_id,)
        ).fetchone()
        problems = conn.execute(
            "SELECT severity, check_name, iso_name, path FROM omni.validation_problems WHERE run_id = %s",
            (run_id,),
        ).fetchall()
    assert run is not None
    return run, problems


def deep_validation(demo_set: DemoSet) -> list[str]:
    """validate-isos --deep of the demo set, trusting its signer."""
    return [
        "validate-isos",
        "--path",
        str(demo_set.output),
        "--deep",
        "--trusted-key",
        f"{demo_set.key_path}.pub",
    ]


def test_good_set_deep_exits_0_writes_json_and_stores_the_run(
    demo_set: DemoSet, cli_env: Path, database: str, tmp_path: Path
):
    report = tmp_path / "out" / "report.json"
    result = CliRunner().invoke(
        main,
        [
            *deep_validation(demo_set),
            "--passphrase-file",
            str(cli_env),
            "--parallel-factor",
            "3",
            "--report",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "PASSED: deep validation of backup set t1" in result.output
    document = json.loads(report.read_text())
    assert document["passed"] is True and document["problems"] == [] and document["deep"] is True
    assert stored(database, document["run_id"]) == (("t1", True, True), [])


def test_damaged_set_exits_1_and_stores_its_problems(
    demo_set: DemoSet, cli_env: Path, database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder = copy_set(demo_set.output, tmp_path / "set")
    iso = iso_file(folder, "volume-data", 2)
    iso.unlink()
    # Comma-separated trusted keys from the environment: an unrelated key id, then the set's signer.
    monkeypatch.setenv("OMNI_RECOVERY_TRUSTED_KEY", f"{'0' * 64}, {demo_set.key_path}.pub")
    report = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["validate-isos", "--path", str(folder), "--report", str(report)])
    assert result.exit_code == 1, result.output
    assert "FAILED: shallow validation" in result.output and "set_completeness" in result.output
    document = json.loads(report.read_text())
    run, problems = stored(database, document["run_id"])
    assert run == ("t1", False, False)
    assert ("error", "set_completeness", iso.name, None) in problems
    assert len(problems) == len(document["problems"])


def test_flipped_byte_fails_only_in_deep_mode(demo_set: DemoSet, cli_env: Path, tmp_path: Path):
    folder = copy_set(demo_set.output, tmp_path / "set")
    iso = iso_file(folder, "volume-data", 1)
    from omni_recovery.backupset.reader import IsoReader

    with IsoReader(str(iso)) as reader:
        path = next(e.path for e in reader.manifest.files if e.path.startswith("data/") and e.size > 10)
    flip_byte(iso, path, 5)
    base = [
        "validate-isos",
        "--path",
        str(folder),
        "--trusted-key",
        str(demo_set.key_path) + ".pub",
        "--no-store",
    ]
    assert CliRunner().invoke(main, base).exit_code == 0
    result = CliRunner().invoke(main, [*base, "--deep", "--passphrase-file", str(cli_env)])
    assert result.exit_code == 1 and "file_hashes" in result.output and path in result.output


def test_untrusted_signer_and_missing_inputs_are_clear(demo_set: DemoSet, cli_env: Path):
    runner = CliRunner()
    untrusted = runner.invoke(main, ["validate-isos", "--path", str(demo_set.output), "--no-store"])
    assert untrusted.exit_code == 1 and "no trusted signer given" in untrusted.output
    registered = runner.invoke(main, ["validate-isos"])
    assert registered.exit_code == 1 and "register-isos" in registered.output
    no_passphrase = runner.invoke(main, deep_validation(demo_set))
    assert no_passphrase.exit_code == 1 and "no recovery passphrase" in no_passphrase.output
    bad_key = runner.invoke(main, ["validate-isos", "--path", str(demo_set.output), "--trusted-key", "nope"])
    assert bad_key.exit_code == 1 and "neither a 64-hex key id nor a readable file" in bad_key.output
