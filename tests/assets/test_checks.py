"""The asset checks in real Dagster runs over a real registered demo set, and validate-isos on the
registered set.

A good set with the right trusted key passes both checks, in a one-partition run and in a
key-range run (one evaluation per ISO); an untrusted or missing key fails the per-ISO check,
naming the signer, and the failing blocking check stops the downstream catalog asset in the same
run; a flipped byte in a signature file and a missing ISO fail the checks naming ISO and path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from dagster import (
    AssetCheckEvaluation,
    AssetKey,
    AssetSelection,
    DagsterRunStatus,
    ExecuteInProcessResult,
    materialize,
)

from assets.catalog import CATALOG_ASSETS
from assets.checks import ASSET_CHECKS, TRUSTED_KEY_ENV
from assets.ingest import INGEST_TABLES, ISO_PARTITIONS, ingest_iso
from omni_recovery.backupset import layout
from omni_recovery.backupset.reader import list_backup_set
from omni_recovery.backupset.signing import generate_signing_key
from omni_recovery.cli import main
from omni_recovery.db.connection import connect
from omni_recovery.settings import DATABASE_URL_ENV, Settings
from pipelines.resources import BackupSetRegistry
from pipelines.runner import dagster_instance, register_isos
from pipelines.sensors import RANGE_END_TAG, RANGE_START_TAG
from pipelines.workspace_resources import build_resources
from tests.catalog_fixtures import PASSPHRASE, DemoSet, scratch_settings
from tests.checker.tamper import copy_set, flip_byte, iso_file

ASSETS = [ingest_iso, *CATALOG_ASSETS, *ASSET_CHECKS]
INGEST = AssetSelection.assets(*INGEST_TABLES)
CATALOG = AssetSelection.assets(*(key for asset in CATALOG_ASSETS for key in asset.keys))
FILES = AssetKey("files")
PARTITIONS = ISO_PARTITIONS.name or "isos"


def _pub(demo_set: DemoSet) -> str:
    return str(demo_set.key_path) + ".pub"


def _signer(demo_set: DemoSet) -> str:
    (signer,) = demo_set.trusted.key_ids
    return signer


@pytest.fixture(scope="module")
def registered(
    demo_set: DemoSet, catalog_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """The good demo set (t1) registered with register-isos into a workspace of its own."""
    with scratch_settings(tmp_path_factory, "checks-ws", catalog_database_url) as settings:
        with pytest.MonkeyPatch.context() as env:
            env.setenv(TRUSTED_KEY_ENV, _pub(demo_set))
            register_isos(str(demo_set.output), settings)
        yield settings


def _run(
    settings: Settings,
    selection: AssetSelection,
    *,
    partition_key: str | None = None,
    key_range: tuple[str, str] | None = None,
) -> ExecuteInProcessResult:
    tags = {RANGE_START_TAG: key_range[0], RANGE_END_TAG: key_range[1]} if key_range else None
    return materialize(
        ASSETS,
        instance=dagster_instance(settings),
        resources=build_resources(settings),
        selection=selection,
        partition_key=partition_key,
        tags=tags,
        raise_on_error=False,
    )


def _evaluations(result: ExecuteInProcessResult, name: str) -> list[AssetCheckEvaluation]:
    return [e for e in result.get_asset_check_evaluations() if e.check_name == name]


def _markdown(evaluation: AssetCheckEvaluation) -> str:
    return str(evaluation.metadata["problems"].value)


def _materialized(result: ExecuteInProcessResult) -> set[AssetKey]:
    return {
        event.asset_key
        for event in result.all_events
        if event.is_step_materialization and event.asset_key is not None
    }


def _failed_steps(result: ExecuteInProcessResult) -> list[str]:
    return [event.step_key or "" for event in result.get_step_failure_events()]


def _keys(settings: Settings) -> Sequence[str]:
    return dagster_instance(settings).get_dynamic_partitions(PARTITIONS)


def _meta(evaluation: AssetCheckEvaluation, key: str) -> Any:
    return evaluation.metadata[key].value


def test_good_set_passes_both_checks_with_the_right_trusted_key(
    registered: Settings, demo_set: DemoSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TRUSTED_KEY_ENV, _pub(demo_set))
    keys = list(_keys(registered))
    assert sorted(keys) == sorted(demo_set.summary.isos)

    # a key-range run (as register-isos makes): one passing evaluation per ISO, each with its partition
    ranged = _run(registered, INGEST, key_range=(keys[0], keys[-1]))
    assert ranged.success
    evaluations = _evaluations(ranged, "iso_validation")
    assert sorted(e.partition or "" for e in evaluations) == sorted(keys)
    assert all(e.passed and e.blocking for e in evaluations)
    assert all(_meta(e, "errors") == 0 and _meta(e, "trusted_keys") == _signer(demo_set) for e in evaluations)

    # one partition with the downstream catalog asset in the same run: checked, then loaded
    core = next(k for k in keys if f"_{layout.SYSTEM_CORE}_" in k)
    single = _run(registered, INGEST | AssetSelection.assets(FILES), partition_key=core)
    assert single.success
    (evaluation,) = _evaluations(single, "iso_validation")
    assert evaluation.passed and evaluation.partition == core
    assert _markdown(evaluation) == "no problems" and evaluation.description == f"{core}: no problems"
    assert FILES in _materialized(single)

    catalog = _run(registered, CATALOG)
    assert catalog.success
    (set_check,) = _evaluations(catalog, "set_validation")
    assert set_check.passed and set_check.blocking and set_check.asset_key == AssetKey("isos")
    assert _meta(set_check, "isos_checked") == len(keys)
    assert _meta(set_check, "backup_sets")["t1"]["isos"] == len(keys)
    assert set_check.description == "backup set(s) t1: no problems"


def test_an_untrusted_key_fails_the_iso_check_naming_the_signer_and_blocks_downstream(
    registered: Settings, demo_set: DemoSet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    other = tmp_path / "other.key"
    generate_signing_key(other)
    monkeypatch.setenv(TRUSTED_KEY_ENV, f"{other}.pub")
    key = next(k for k in _keys(registered) if f"_{layout.SYSTEM_CORE}_" in k)
    result = _run(registered, INGEST | AssetSelection.assets(FILES), partition_key=key)
    assert not result.success
    (evaluation,) = _evaluations(result, "iso_validation")
    assert not evaluation.passed and evaluation.blocking and evaluation.partition == key
    table = _markdown(evaluation)
    assert _signer(demo_set) in table and "is not among the trusted keys" in table
    assert layout.SIGNER_PUB_PATH in table and key in table
    assert _meta(evaluation, "blocking") >= 1
    # the checked asset stays materialised; the downstream catalog table in the same run never starts
    materialized = _materialized(result)
    assert AssetKey("iso_manifest") in materialized and FILES not in materialized
    assert _failed_steps(result) == ["iso_manifest_iso_validation"]  # `files` was skipped, not failed


def test_no_trusted_key_fails_every_iso_of_a_range_run_saying_so(
    registered: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TRUSTED_KEY_ENV, raising=False)
    keys = list(_keys(registered))[:2]
    result = _run(registered, INGEST, key_range=(keys[0], keys[1]))
    assert not result.success
    evaluations = _evaluations(result, "iso_validation")
    assert sorted(e.partition or "" for e in evaluations) == sorted(keys)
    for evaluation in evaluations:
        assert not evaluation.passed and "no trusted signer given" in _markdown(evaluation)
        assert TRUSTED_KEY_ENV in _markdown(evaluation)

    # a trusted key spec that is no key at all is reported by the check, not raised
    monkeypatch.setenv(TRUSTED_KEY_ENV, "not-a-key")
    bad = _run(registered, INGEST, partition_key=keys[0])
    (evaluation,) = _evaluations(bad, "iso_validation")
    assert not evaluation.passed and "neither a 64-hex key id nor a readable file" in _markdown(evaluation)


@pytest.fixture
def damaged_workspace(
    fresh_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """A workspace and database of its own, for a damaged copy of the set (never the good one's rows)."""
    with scratch_settings(tmp_path_factory, "checks-damaged", fresh_database_url) as settings:
        yield settings


def _trusted_copy(demo_set: DemoSet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A copy of the demo set to damage, its signer trusted through the environment."""
    monkeypatch.setenv(TRUSTED_KEY_ENV, _pub(demo_set))
    return copy_set(demo_set.output, tmp_path / "set")


def _register_by_hand(settings: Settings, folder: Path) -> list[str]:
    """What register-isos records (registry + partitions), without its runs: the test runs them."""
    members = list_backup_set(str(folder))
    keys = BackupSetRegistry(workspace=str(settings.workspace)).register(members)
    dagster_instance(settings).add_dynamic_partitions(PARTITIONS, keys)
    return keys


def test_a_damaged_signature_fails_the_iso_check_naming_iso_and_path(
    damaged_workspace: Settings, demo_set: DemoSet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = _trusted_copy(demo_set, monkeypatch, tmp_path)
    iso = iso_file(folder, "volume-data", 1)
    flip_byte(iso, layout.MANIFEST_SIG_PATH, 3)
    _register_by_hand(damaged_workspace, folder)

    # ingest reads no signature, so the ISO ingests; its check fails and stops `files`
    result = _run(damaged_workspace, INGEST | AssetSelection.assets(FILES), partition_key=iso.name)
    assert not result.success
    (evaluation,) = _evaluations(result, "iso_validation")
    assert not evaluation.passed and evaluation.partition == iso.name
    table = _markdown(evaluation)
    assert f"| error | signatures | {iso.name} | {layout.MANIFEST_PATH} |" in table
    assert "does not verify" in table
    assert evaluation.description == f"{iso.name}: 1 blocking problem(s) (signatures)"
    assert FILES not in _materialized(result) and _failed_steps(result) == ["iso_manifest_iso_validation"]

    # the other ISOs of the same copy still pass
    other = iso_file(folder, "volume-data", 2)
    assert _run(damaged_workspace, INGEST, partition_key=other.name).success


def test_a_missing_iso_fails_the_set_check_naming_it(
    damaged_workspace: Settings, demo_set: DemoSet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = _trusted_copy(demo_set, monkeypatch, tmp_path)
    missing = iso_file(folder, "volume-data", 2)
    missing.unlink()
    keys = _register_by_hand(damaged_workspace, folder)
    ingest = _run(damaged_workspace, INGEST, key_range=(keys[0], keys[-1]))
    assert ingest.success and all(e.passed for e in _evaluations(ingest, "iso_validation"))

    catalog = _run(damaged_workspace, CATALOG)
    assert not catalog.success
    (set_check,) = _evaluations(catalog, "set_validation")
    assert not set_check.passed and set_check.blocking
    table = _markdown(set_check)
    assert "set_completeness" in table and missing.name in table
    assert _meta(set_check, "isos_checked") == len(keys)


def test_validate_isos_without_path_validates_the_registered_set(
    registered: Settings, demo_set: DemoSet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = registered.database_url
    assert url is not None
    monkeypatch.setenv(DATABASE_URL_ENV, url)
    monkeypatch.delenv(TRUSTED_KEY_ENV, raising=False)
    monkeypatch.delenv("OMNI_RECOVERY_PASSPHRASE", raising=False)
    passphrase = tmp_path / "passphrase"
    passphrase.write_bytes(PASSPHRASE + b"\n")
    workspace = ["--workspace", str(registered.workspace)]
    result = CliRunner().invoke(
        main,
        [
            "validate-isos",
            *workspace,
            "--deep",
            "--trusted-key",
            _pub(demo_set),
            "--passphrase-file",
            str(passphrase),
        ],
    )
    assert result.exit_code == 0, result.output
    said = next(line for line in result.output.splitlines() if line.startswith("validating registered"))
    assert said.startswith("validating registered backup set t1 in ") and said.endswith(str(demo_set.output))
    assert "PASSED: deep validation of backup set t1" in result.output
    run_id = result.output.split("stored as validation run ")[1].split()[0]
    with connect(url) as conn:
        stored = conn.execute(
            "SELECT backup_set_id, deep, passed FROM omni.validation_runs WHERE run_id = %s", (run_id,)
        ).fetchone()
    assert stored == ("t1", True, True)

    named = CliRunner().invoke(
        main, ["validate-isos", *workspace, "--backup-set-id", "t1", "--trusted-key", _pub(demo_set)]
    )
    assert named.exit_code == 0 and "validating registered backup set t1" in named.output
    unknown = CliRunner().invoke(main, ["validate-isos", *workspace, "--backup-set-id", "zz"])
    assert unknown.exit_code == 1 and "backup set zz is not registered (registered: t1)" in unknown.output
    both = CliRunner().invoke(
        main, ["validate-isos", "--path", str(demo_set.output), "--backup-set-id", "t1", "--no-store"]
    )
    assert both.exit_code == 1 and "without --path" in both.output


@pytest.mark.parametrize("trusted", [True, False])
def test_validate_isos_deep_of_a_registered_set_is_a_validate_set_run_the_ui_shows(
    registered: Settings, demo_set: DemoSet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, trusted: bool
) -> None:
    """validate-isos --deep of the folder a set was registered from runs the named job `validate_set`:
    passed, `deep_validation` is materialised with the stored report; failed (no trusted key), the run
    fails, the report is stored all the same and the command exits 1."""
    assert registered.database_url is not None
    monkeypatch.setenv(DATABASE_URL_ENV, registered.database_url)
    monkeypatch.delenv(TRUSTED_KEY_ENV, raising=False)
    passphrase = tmp_path / "passphrase"
    passphrase.write_bytes(PASSPHRASE + b"\n")
    args = [
        "validate-isos",
        "--path",
        str(demo_set.output),
        "--workspace",
        str(registered.workspace),
        "--deep",
    ]
    args += ["--passphrase-file", str(passphrase), *(["--trusted-key", _pub(demo_set)] if trusted else [])]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == (0 if trusted else 1), result.output
    instance = dagster_instance(registered)
    run = instance.get_runs(limit=1)[0]
    status = DagsterRunStatus.SUCCESS if trusted else DagsterRunStatus.FAILURE
    assert (run.job_name, run.status) == ("validate_set", status)
    stored = result.output.split("stored as validation run ")[1].split()[0]
    with connect(registered.database_url) as conn:
        row = conn.execute(
            "SELECT deep, passed FROM omni.validation_runs WHERE run_id = %s", (stored,)
        ).fetchone()
    assert row == (True, trusted)
    if trusted:
        record = instance.fetch_materializations(AssetKey("deep_validation"), limit=1).records[0]
        assert record.event_log_entry.run_id == run.run_id
        assert record.asset_materialization is not None
        assert record.asset_materialization.metadata["validation_run"].value == stored


def _register(settings: Settings, demo_set: DemoSet, *keys: str) -> Any:
    """`omni-recovery register-isos` of the demo set into `settings`' workspace, with these --trusted-key."""
    options = [option for key in keys for option in ("--trusted-key", key)]
    command = ["register-isos", "--path", str(demo_set.output), "--workspace", str(settings.workspace)]
    return CliRunner().invoke(main, [*command, "--quiet", *options])


def _check_evaluations(settings: Settings) -> dict[str, list[bool]]:
    """check name → passed, of every evaluation the workspace's Dagster instance (the UI's) holds."""
    from dagster import DagsterEventType, EventRecordsFilter

    instance = dagster_instance(settings)
    records = instance.get_event_records(EventRecordsFilter(DagsterEventType.ASSET_CHECK_EVALUATION))
    found: dict[str, list[bool]] = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data  # type: ignore[union-attr]
        assert isinstance(evaluation, AssetCheckEvaluation)
        found.setdefault(evaluation.check_name, []).append(evaluation.passed)
    return found


def test_register_isos_runs_the_blocking_checks_judging_the_signer_by_the_trusted_keys_given(
    demo_set: DemoSet,
    fresh_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the right key both checks run and pass; without a key they pass saying the signer was not
    judged; with another key the ISO check fails, in one line naming the ISO and path, and the set is not
    registered."""
    monkeypatch.delenv(TRUSTED_KEY_ENV, raising=False)
    isos = len(demo_set.summary.isos)
    with scratch_settings(tmp_path_factory, "checks-register", fresh_database_url) as settings:
        trusted = _register(settings, demo_set, _pub(demo_set))
        assert trusted.exit_code == 0, trusted.output
        assert f"check:         iso_validation passed {isos} of {isos}\n" in trusted.output
        assert "check:         set_validation passed 1 of 1\n" in trusted.output
        assert _check_evaluations(settings) == {"iso_validation": [True] * isos, "set_validation": [True]}

    with scratch_settings(tmp_path_factory, "checks-register-nokey", fresh_database_url) as settings:
        unjudged = _register(settings, demo_set)
        assert unjudged.exit_code == 0, unjudged.output
        said = f"iso_validation passed {isos} of {isos}; {isos} with warnings, e.g. "
        assert said in unjudged.output and "not checked against a trusted key: none given" in unjudged.output
        assert _signer(demo_set) in unjudged.output

    other = tmp_path_factory.mktemp("other-key") / "other.key"
    generate_signing_key(other)
    with scratch_settings(tmp_path_factory, "checks-register-other", fresh_database_url) as settings:
        refused = _register(settings, demo_set, f"{other}.pub")
        assert refused.exit_code == 1
        [line] = refused.output.strip().splitlines()
        assert f"{demo_set.output}: a blocking check failed (" in line and "Traceback" not in line
        assert re.search(
            rf"t1_\S+\.iso: {layout.SIGNER_PUB_PATH}: signer {_signer(demo_set)} is not among", line
        )
        assert "this registration is undone" in line
        assert _keys(settings) == [] and _check_evaluations(settings)["iso_validation"] == [False] * isos
