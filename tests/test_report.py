"""The recovery report renders every step, adaptation and check, in JSON and in self-contained HTML."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from omni_recovery.report import AdaptationLine, CheckLine, RecoveryReport, StepTiming, write_report

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def report(status: str = "succeeded") -> RecoveryReport:
    steps = [
        StepTiming(
            "directors:d1", "directors", "director:d1", "succeeded", T0, T0 + timedelta(seconds=2), 100
        ),
        StepTiming(
            "volumes:billing/pgdata",
            "volumes",
            "volume:billing/pgdata",
            status,
            T0 + timedelta(seconds=2),
            T0 + timedelta(seconds=9),
            5000,
            detail={"error": "sha256 mismatch <x>"} if status == "failed" else {},
        ),
        StepTiming("report", "report", None, "running", None, None),
    ]
    return RecoveryReport(
        run_id="run-1",
        plan_id="plan-1",
        backup_set_id="demo-1",
        status=status,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=10),
        steps=steps,
        adaptations=[
            AdaptationLine("network", "director:d1", "10.0.0.11", "10.20.0.11", "new management subnet")
        ],
        checks=[CheckLine("every file verified", True, "1665 files")],
        recovered={"director": ["d1"], "volume": ["billing/pgdata"]},
        after_boot=["director/d1: Director d1 answers on https://10.20.0.11:9443/health"],
    )


def test_json_and_html_carry_everything(tmp_path: Path):
    json_path, html_path = write_report(report(), tmp_path)
    data = json.loads(json_path.read_text())
    assert data["status"] == "succeeded" and len(data["steps"]) == 3
    assert data["adaptations"][0]["new"] == "10.20.0.11"
    page = html_path.read_text()
    for text in (
        "directors:d1",
        "volumes:billing/pgdata",
        "10.0.0.11",
        "10.20.0.11",
        "every file verified",
        "<svg",
        "SUCCEEDED",
        "7.00 s",
        "Once the nodes boot, check",
        "director/d1: Director d1 answers on https://10.20.0.11:9443/health",
    ):
        assert text in page, text
    assert not list(tmp_path.glob(".*partial"))


def test_failures_are_listed_and_escaped(tmp_path: Path):
    _, html_path = write_report(report("failed"), tmp_path)
    page = html_path.read_text()
    assert "<h2>Failures</h2>" in page and "sha256 mismatch &lt;x&gt;" in page
    assert "<x>" not in page


def test_what_a_target_could_not_take_is_listed_per_file(tmp_path: Path):
    line = "volume/billing/pgdata: node-a: volumes/billing/pgdata/files/PG_VERSION: owner 999:9 not set: <E>"
    json_path, html_path = write_report(dataclasses.replace(report(), not_applied=[line]), tmp_path)
    assert json.loads(json_path.read_text())["not_applied"] == [line]
    page = html_path.read_text()
    assert "<h2>Not applied on the targets</h2>" in page and "not set: &lt;E&gt;" in page
    _, plain = write_report(report(), tmp_path / "plain")
    assert "Not applied" not in plain.read_text()
