"""The recovery report: what was recovered, every adaptation, each step's time, checks, failures.

Rendered twice from one `RecoveryReport`: JSON for machines and a single self-contained HTML
page for people, with a timeline (one bar per step, grouped by phase, drawn as inline SVG) so
that it opens anywhere without a server or network. Writes are atomic (temporary name, then
rename), so a report on disk is always whole.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

_STATUS_COLOURS = {"succeeded": "#2e7d32", "failed": "#c62828", "running": "#f9a825", "skipped": "#9e9e9e"}


@dataclass(frozen=True)
class StepTiming:
    step_id: str
    phase: str
    component_id: str | None
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    bytes_written: int = 0
    attempts: int = 1
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class AdaptationLine:
    kind: str
    subject: str
    old: Any
    new: Any
    reason: str


@dataclass(frozen=True)
class CheckLine:
    name: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class RecoveryReport:
    run_id: str
    plan_id: str
    backup_set_id: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    steps: list[StepTiming]
    adaptations: list[AdaptationLine]
    checks: list[CheckLine]
    recovered: dict[str, list[str]]
    notes: list[str] = field(default_factory=list)
    # The plan's `wait` of each restored component that only the running environment can show
    # (a health endpoint answering): the operator's to check once the nodes boot.
    after_boot: list[str] = field(default_factory=list)
    # What a target root could not take (an owner, an extended attribute), one line per file.
    not_applied: list[str] = field(default_factory=list)

    @property
    def failed_steps(self) -> list[StepTiming]:
        return [s for s in self.steps if s.status == "failed"]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=_json_default, sort_keys=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def write_report(report: RecoveryReport, folder: Path) -> tuple[Path, Path]:
    """Write `report.json` and `report.html` into `folder`; returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / "report.json", folder / "report.html"
    _write_atomic(json_path, report.to_json())
    _write_atomic(html_path, render_html(report))
    return json_path, html_path


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def render_html(report: RecoveryReport) -> str:
    e = html.escape
    total_bytes = sum(s.bytes_written for s in report.steps)
    recovered = "".join(
        f"<tr><th>{e(kind)}</th><td>{len(names)}</td><td>{e(', '.join(names))}</td></tr>"
        for kind, names in report.recovered.items()
    )
    adaptations = "".join(
        f"<tr><td>{e(a.kind)}</td><td>{e(a.subject)}</td><td><code>{e(_short(a.old))}</code></td>"
        f"<td><code>{e(_short(a.new))}</code></td><td>{e(a.reason)}</td></tr>"
        for a in report.adaptations
    )
    checks = "".join(
        f"<tr><td>{'✔' if c.passed else '✘'}</td><td>{e(c.name)}</td><td>{e(c.detail)}</td></tr>"
        for c in report.checks
    )
    steps = "".join(
        f"<tr class='{e(s.status)}'><td>{e(s.phase)}</td><td>{e(s.step_id)}</td><td>{e(s.status)}</td>"
        f"<td>{_fmt_seconds(s.seconds)}</td><td>{s.bytes_written}</td><td>{s.attempts}</td>"
        f"<td>{e(str(s.detail.get('error', '')))}</td></tr>"
        for s in report.steps
    )
    failures = "".join(
        f"<li>{e(s.step_id)}: {e(str(s.detail.get('error', 'failed')))}</li>" for s in report.failed_steps
    )
    notes = "".join(f"<li>{e(n)}</li>" for n in report.notes)
    after_boot = "".join(f"<li>{e(c)}</li>" for c in report.after_boot)
    not_applied = "".join(f"<li>{e(line)}</li>" for line in report.not_applied)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Recovery report {e(report.run_id)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}}
tr.failed td{{background:#fdecea}} .status{{font-size:1.4em;font-weight:bold}}
.succeeded{{color:#2e7d32}} .failed{{color:#c62828}} code{{font-size:.85em}}
</style></head><body>
<h1>Recovery report</h1>
<p class="status {e(report.status)}">{e(report.status.upper())}</p>
<p>Run <code>{e(report.run_id)}</code> of plan <code>{e(report.plan_id)}</code>, backup set
<code>{e(report.backup_set_id)}</code>; started {e(report.started_at.isoformat())},
finished {e(report.finished_at.isoformat() if report.finished_at else "—")};
{len(report.steps)} steps, {total_bytes} bytes written.</p>
{f"<h2>Failures</h2><ul>{failures}</ul>" if failures else ""}
<h2>Timeline</h2>{render_timeline(report.steps)}
<h2>Recovered</h2><table><tr><th>kind</th><th>count</th><th>names</th></tr>{recovered}</table>
<h2>Adaptations</h2><table><tr><th>kind</th><th>subject</th><th>old</th><th>new</th><th>reason</th></tr>
{adaptations}</table>
<h2>Checks</h2><table><tr><th></th><th>check</th><th>detail</th></tr>{checks}</table>
{f"<h2>Once the nodes boot, check</h2><ul>{after_boot}</ul>" if after_boot else ""}
{f"<h2>Not applied on the targets</h2><ul>{not_applied}</ul>" if not_applied else ""}
<h2>Steps</h2><table><tr><th>phase</th><th>step</th><th>status</th><th>time</th><th>bytes</th>
<th>attempts</th><th>error</th></tr>{steps}</table>
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
</body></html>
"""


def render_timeline(steps: list[StepTiming], width: int = 900) -> str:
    """An SVG Gantt chart: one row per step, ordered by start, coloured by status."""
    timed = [s for s in steps if s.started_at is not None]
    if not timed:
        return "<p>No step has started.</p>"
    start = min(s.started_at for s in timed if s.started_at)
    end = max((s.finished_at or s.started_at) for s in timed if s.started_at)
    span = max((end - start).total_seconds(), 1e-3)
    label, row = 260, 16
    bars = []
    for i, step in enumerate(sorted(timed, key=lambda s: (s.started_at, s.step_id))):
        assert step.started_at is not None
        x = label + (step.started_at - start).total_seconds() / span * (width - label)
        w = max(
            ((step.finished_at or step.started_at) - step.started_at).total_seconds()
            / span
            * (width - label),
            2,
        )
        colour = _STATUS_COLOURS.get(step.status, "#607d8b")
        y = i * row
        name = html.escape(f"{step.phase} · {step.step_id}")
        bars.append(
            f'<text x="0" y="{y + 12}" font-size="11">{name}</text>'
            f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row - 4}" fill="{colour}">'
            f"<title>{html.escape(step.step_id)}: {_fmt_seconds(step.seconds)}</title></rect>"
        )
    height = len(timed) * row
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="timeline of recovery steps">{"".join(bars)}</svg>'
        f"<p>0 s to {span:.1f} s</p>"
    )


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt_seconds(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.2f} s"
