"""The recovery report renders every step, adaptation and check, in JSON and in self-contained HTML."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omni_recovery.report.render import AdaptationLine, CheckLine, RecoveryReport, StepTiming, write_report

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
    json_path, html_path = write_report(replace(report(), not_applied=[line]), tmp_path)
    assert json.loads(json_path.read_text())["not_applied"] == [line]
    page = html_path.read_text()
    assert "<h2>Not applied on the targets</h2>" in page and "not set: &lt;E&gt;" in page
    _, plain = write_report(report(), tmp_path / "plain")
    assert "Not applied" not in plain.read_text()


def big_report(status: str) -> RecoveryReport:
    """A report as long and as wide as a real one: many steps, long names, many adaptations."""
    base = report(status)
    steps = [
        StepTiming(
            f"volume/app-{i:03d}/{'very-long-volume-name-' * 3}{i}",
            "volumes",
            f"volume:app-{i}/data",
            "succeeded",
            T0 + timedelta(seconds=i),
            T0 + timedelta(seconds=i * 2 + 30),
            i * 2**20,
        )
        for i in range(60)
    ]
    adaptations = [
        AdaptationLine(kind, f"{kind}:{'x' * 90}{i}", {"old": "a" * 200}, "b" * 300, "reason " * 30)
        for kind in ("address", "cpu", "storage-path", "mac")
        for i in range(40)
    ]
    return replace(
        base,
        steps=[*base.steps, *steps],
        adaptations=adaptations,
        finished_at=T0 + timedelta(minutes=3, microseconds=123456),
        ca_fingerprint="ab" * 32,
        post_recovery_backup="/srv/omni/workspace/backups/demo-1-post-abcdef",
        resume_command="omni-recovery execute-plan --plan /srv/omni/recovery-plan.yaml --workspace /srv/w",
        earlier_attempts=["volumes:billing/pgdata: succeeded at attempt 2"],
    )


def test_the_page_opens_with_the_verdict_and_next_steps_and_ends_with_folded_adaptations(tmp_path: Path):
    _, html_path = write_report(big_report("failed"), tmp_path)
    page = html_path.read_text()
    order = [
        "FAILED",
        "<h2>Failures</h2>",
        "What to do next",
        "omni-recovery execute-plan --plan",
        "<h2>Checks",
        "<h2>Timeline",
        "ab" * 32,
        "file:///srv/omni/workspace/backups/demo-1-post-abcdef",
        "Earlier attempts",
        "<h2>Adaptations (160)",
    ]
    positions = [page.index(text) for text in order]
    assert positions == sorted(positions), dict(zip(order, positions, strict=True))
    assert page.count("<details><summary>") == 5, "the steps and each of the 4 adaptation kinds folded"
    assert "<summary>address (40)</summary>" in page
    assert "123456" not in page and "+00:00" not in page, "no raw timestamps"
    assert "3 min 00 s" in page
    timeline = page[page.index("<h2>Timeline") : page.index("What this run made")]
    assert "1 min 00 s</text>" in timeline and ">0 s</text>" in timeline, "a time axis with ticks"


def test_a_succeeded_report_says_what_to_check_and_offers_no_resume(tmp_path: Path):
    _, html_path = write_report(replace(big_report("succeeded"), resume_command=""), tmp_path)
    page = html_path.read_text()
    assert "Resume this run" not in page and "Boot the new nodes" in page
    assert f"Trust the new CA (SHA-256 {'ab' * 32})" in page


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
@pytest.mark.parametrize("status", ["succeeded", "failed"])
def test_report_has_no_horizontal_overflow_at_1280_px_in_chromium(tmp_path: Path, status: str):
    _, html_path = write_report(big_report(status), tmp_path)
    # A copy with every fold opened and a script that writes the page's widths into its title.
    probe = tmp_path / "probe.html"
    measure = (
        "<script>document.querySelectorAll('details').forEach(d => d.open = true);"
        "document.title = 'widths ' + document.documentElement.scrollWidth + ' ' + innerWidth;</script>"
    )
    probe.write_text(html_path.read_text().replace("</body>", measure + "</body>"))
    result = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1280,900",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = re.search(r"<title>widths (\d+) (\d+)</title>", result.stdout)
    assert found, result.stdout[:2000] + result.stderr[-2000:]
    scroll_width, window_width = int(found[1]), int(found[2])
    assert window_width == 1280
    assert scroll_width <= window_width, f"the page is {scroll_width} px wide in a {window_width} px window"
