"""The README's first command: the main job recovers a demo environment end to end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from omni_recovery.cli import main


def test_demo_runs_end_to_end(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OMNI_RECOVERY_DATABASE_URL", database_url)
    monkeypatch.delenv("OMNI_RECOVERY_PASSPHRASE", raising=False)
    result = CliRunner().invoke(main, ["demo", "--workspace", str(tmp_path / "ws"), "--volume-scale", "tiny"])
    assert result.exit_code == 0, result.output
    assert "deep validation: PASSED" in result.output
    assert "billing-db: PostgreSQL started on the restored volume, 10,000 rows read back" in result.output
    report = re.search(r"report: (\S+)", result.output)
    backup = re.search(r"post-recovery backup: (\S+)", result.output)
    assert report and backup, result.output
    assert "SUCCEEDED" in Path(report[1]).read_text()
    assert sorted(p.suffix for p in Path(backup[1]).iterdir()) == [".iso"] * len(
        list(Path(backup[1]).iterdir())
    )
    assert (tmp_path / "ws" / "demo" / "keys" / "passphrase").stat().st_mode & 0o777 == 0o600
    assert succeeded_jobs(tmp_path / "ws") >= {
        "create_backup",
        "ingest_isos",
        "build_catalog",
        "validate_set",
        "plan_recovery",
        "restore",
    }, "the UI shows every stage of the main job as the named job its command runs"


def succeeded_jobs(workspace: Path) -> set[str]:
    """The jobs with a succeeded run in the workspace's Dagster instance (what the UI lists)."""
    from dagster import DagsterRunStatus, RunsFilter

    from omni_recovery.settings import load_settings
    from pipelines.runner import dagster_instance

    instance = dagster_instance(load_settings(workspace))
    return {r.job_name for r in instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.SUCCESS]))}
