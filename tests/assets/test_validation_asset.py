"""The deep_validation asset, materialised by real Dagster against a registered real demo set.

A demo set is registered with register-isos into a workspace with a real PostgreSQL catalog; the
asset validates it deeply and stores the report where execute-plan looks for it. A copy with one
flipped byte of volume data registers (registration reads no volume bytes) but fails the asset,
and its failing report is stored all the same.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import ExecuteInProcessResult, materialize

from assets.adaptation import PlanningResource
from assets.checks import TRUSTED_KEY_ENV
from assets.validation import deep_validation
from omni_recovery.backupset.reader import IsoReader, manifests_fingerprint
from omni_recovery.db.connection import connect
from omni_recovery.plan.generate import open_set
from omni_recovery.settings import PASSPHRASE_ENV, Settings
from pipelines.runner import register_isos
from tests.catalog_fixtures import PASSPHRASE, DemoSet, scratch_workspace
from tests.checker.tamper import flip_byte, iso_file


@pytest.fixture
def keys_in_environment(demo_set: DemoSet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRUSTED_KEY_ENV, f"{demo_set.key_path}.pub")
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE.decode())


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with scratch_workspace(tmp_path_factory, "validation") as root:
        yield root


def _registered(location: Path, workspace: Path, database_url: str) -> Settings:
    settings = Settings(workspace=workspace, database_url=database_url)
    register_isos(str(location), settings)
    return settings


def _materialize(settings: Settings) -> ExecuteInProcessResult:
    planning = PlanningResource(workspace=str(settings.workspace), database_url=settings.database_url or "")
    return materialize([deep_validation], resources={"planning": planning}, raise_on_error=False)


def _latest_deep_run(database_url: str, backup_set_id: str) -> tuple[str, bool, str | None]:
    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT run_id, passed, manifests_sha256 FROM omni.validation_runs "
            "WHERE backup_set_id = %s AND deep ORDER BY started_at DESC LIMIT 1",
            (backup_set_id,),
        ).fetchone()
    assert row is not None
    return str(row[0]), bool(row[1]), row[2]


@pytest.mark.usefixtures("keys_in_environment")
def test_a_sound_set_is_validated_deeply_and_the_report_stored_for_execute_plan(
    demo_set: DemoSet, workspaces: Path, catalog_database_url: str
) -> None:
    settings = _registered(demo_set.output, workspaces / "sound", catalog_database_url)
    result = _materialize(settings)
    assert result.success
    (materialization,) = result.asset_materializations_for_node("deep_validation")
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    set_id = demo_set.summary.backup_set_id
    assert (metadata["backup_set_id"], metadata["blocking"], metadata["errors"]) == (set_id, 0, 0)
    hashed = metadata["bytes_hashed"]
    assert isinstance(hashed, int) and hashed > 0
    assert metadata["isos"] == len(list(demo_set.output.glob("*.iso")))
    run_id, passed, fingerprint = _latest_deep_run(catalog_database_url, set_id)
    with open_set(str(demo_set.output)) as readers:
        expected = manifests_fingerprint(readers)
    assert (run_id, passed, fingerprint) == (metadata["validation_run"], True, expected)


@pytest.mark.usefixtures("keys_in_environment")
def test_a_flipped_byte_of_volume_data_fails_the_asset_and_is_stored_as_failed(
    demo_set: DemoSet, workspaces: Path, catalog_database_url: str
) -> None:
    damaged = shutil.copytree(demo_set.output, workspaces / "damaged-set")
    volume_iso = iso_file(damaged, "volume-data")
    with IsoReader(str(volume_iso)) as reader:
        entry = next(
            e
            for e in reader.manifest.files
            if e.type == "file" and e.path.startswith("data/volumes/") and e.size > 0 and e.encryption is None
        )
    flip_byte(volume_iso, entry.path)
    settings = _registered(damaged, workspaces / "damaged", catalog_database_url)

    result = _materialize(settings)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    data = failure.step_failure_data.user_failure_data
    assert data is not None and "blocking problem(s)" in str(data.description)
    assert entry.path in str(data.metadata["problems"].value)
    _run_id, passed, _fingerprint = _latest_deep_run(catalog_database_url, demo_set.summary.backup_set_id)
    assert not passed, "the failing report is on record: execute-plan refuses the set"


def test_without_a_passphrase_nothing_is_read(
    demo_set: DemoSet, workspaces: Path, catalog_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    result = _materialize(Settings(workspace=workspaces / "none", database_url=catalog_database_url))
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert PASSPHRASE_ENV in str(failure.step_failure_data.error)
