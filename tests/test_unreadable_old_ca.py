"""An old CA certificate that cannot be parsed is a warning in the plan and the report, not a failure."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from omni_recovery.backupset.signing import load_signing_key
from tests.backupset.conftest import DemoSet
from tests.checker.tamper import copy_set, iso_file, rebuild
from tests.test_recovery import recovered


@pytest.fixture
def workspace(tmp_path: Path, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OMNI_RECOVERY_DATABASE_URL", fresh_database_url)
    return tmp_path / "ws"


def with_unreadable_old_ca(demo: DemoSet, folder: Path) -> Path:
    """A copy of `demo`'s set (validly signed) whose keys/ca.crt is PEM armour around no certificate."""
    copy_set(demo.output, folder)
    garbage = b"-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n"
    rebuild(
        iso_file(folder, "system-core"),
        load_signing_key(demo.key_path),
        replace={"data/keys/ca.crt": garbage},
    )
    return folder


def test_an_unreadable_old_ca_is_a_warning_and_a_new_ca_is_issued(
    demo_set: DemoSet, tmp_path: Path, workspace: Path, fresh_database_url: str
) -> None:
    folder = with_unreadable_old_ca(demo_set, tmp_path / "set")
    setup, _ = recovered(
        dataclasses.replace(demo_set, output=folder), tmp_path / "restore", workspace, fresh_database_url
    )
    (warning,) = [a for a in setup.plan.adaptations if a.kind == "certificate"]
    assert warning.reason.startswith("warning: the old CA certificate is not PEM")
    (report,) = (tmp_path / "ws" / "reports").glob("run-*/report.json")
    assert (
        "old CA (keys/ca.crt)" in report.read_text()
        and "SUCCEEDED" in report.with_suffix(".html").read_text()
    )
