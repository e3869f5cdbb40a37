"""The recovery report: the verdict, what failed and what to do next, checks, timeline, adaptations.

Rendered twice from one `RecoveryReport`: JSON for machines and a single self-contained HTML
page for people (the Jinja2 template templates/report.html.j2, every value escaped). The page
opens with the verdict, the failures and what to do next (the command that resumes the run),
then the checks, the timeline (one bar per step over a time axis, inline SVG scaled to the
page), the new CA's fingerprint and the post-recovery backup; the adaptations come last, folded
by kind. It needs no server, network or script. Writes are atomic (temporary name, then rename),
so a report on disk is always whole.
"""

from __future__ import annotations

import html
import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader
from markupsafe import Markup

from omni_recovery.whole_file import write_text_whole
from transforms.recommendations import Recommendation

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
    resume_command: str = ""  # the command that resumes this run, when it did not succeed
    ca_fingerprint: str = ""  # SHA-256 of the CA this run issued
    post_recovery_backup: str = ""  # where the post-recovery backup is (or will be) written
    # Steps that took more than one attempt, with what the earlier attempts recorded.
    earlier_attempts: list[str] = field(default_factory=list)
    # What the run's measurements and placements suggest (the analysis `omni performance optimize` lists).
    recommendations: list[Recommendation] = field(default_factory=list)
    # Who started (and resumed) the run: OS user, uid, host, database role; the SSH keys used.
    operators: list[str] = field(default_factory=list)

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
    write_text_whole(json_path, report.to_json())
    write_text_whole(html_path, render_html(report))
    return json_path, html_path


def render_html(report: RecoveryReport) -> str:
    """The report as one self-contained page: verdict, what failed and what to do next, the checks,
    the timeline, what the run made; the adaptations last, by kind, folded."""
    adaptations: dict[str, list[AdaptationLine]] = defaultdict(list)
    for line in report.adaptations:
        adaptations[line.kind].append(line)
    ended = report.finished_at or report.started_at
    return _TEMPLATES.get_template("report.html.j2").render(
        r=report,
        next_steps=next_steps(report),
        succeeded=sum(1 for s in report.steps if s.status == "succeeded"),
        total_bytes=sum(s.bytes_written for s in report.steps),
        duration=_fmt_duration((ended - report.started_at).total_seconds()),
        timeline=Markup(render_timeline(report.steps)),
        adaptations=sorted(adaptations.items()),
    )


def next_steps(report: RecoveryReport) -> list[str]:
    """What the operator does now, in order."""
    if report.failed_steps or report.status != "succeeded":
        return [
            "Fix the cause each failed step names (docs/when-things-go-wrong.md says what each means).",
            "Run the same command again: it resumes this run and redoes no file it verified.",
        ]
    steps = ['Boot the new nodes, then check the list under "Once the nodes boot, check".']
    if report.ca_fingerprint:
        steps.append(f"Trust the new CA (SHA-256 {report.ca_fingerprint}) wherever the old one was trusted.")
    if report.post_recovery_backup:
        steps.append(f"Keep the post-recovery backup {report.post_recovery_backup} with the other backups.")
    return steps


def render_timeline(steps: list[StepTiming], width: int = 1000) -> str:
    """An SVG Gantt chart: one row per step, ordered by start, coloured by status, over a time axis
    with ticks in seconds or minutes from the run's first step. It scales to the page's width."""
    timed = [s for s in steps if s.started_at is not None]
    if not timed:
        return "<p>No step has started.</p>"
    start = min(s.started_at for s in timed if s.started_at)
    end = max((s.finished_at or s.started_at) for s in timed if s.started_at)
    span = max((end - start).total_seconds(), 1e-3)
    label, row, axis = 300, 16, 24
    scale = (width - label - 10) / span
    bars = []
    for i, step in enumerate(sorted(timed, key=lambda s: (s.started_at, s.step_id))):
        assert step.started_at is not None
        x = label + (step.started_at - start).total_seconds() * scale
        w = max(((step.finished_at or step.started_at) - step.started_at).total_seconds() * scale, 2)
        colour = _STATUS_COLOURS.get(step.status, "#607d8b")
        y = axis + i * row
        name = html.escape(_short(f"{step.phase} · {step.step_id}", 48))
        bars.append(
            f'<text x="0" y="{y + 12}" font-size="11">{name}</text>'
            f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row - 4}" fill="{colour}">'
            f"<title>{html.escape(step.step_id)}: {_fmt_seconds(step.seconds)}</title></rect>"
        )
    ticks = [
        f'<line x1="{label + t * scale:.1f}" y1="{axis - 4}" x2="{label + t * scale:.1f}" '
        f'y2="{axis + len(timed) * row}" stroke="#ddd"/>'
        f'<text x="{label + t * scale:.1f}" y="{axis - 8}" font-size="11" text-anchor="middle">'
        f"{_fmt_duration(t)}</text>"
        for t in _ticks(span)
    ]
    height = axis + len(timed) * row
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="timeline of recovery steps">{"".join(ticks)}{"".join(bars)}</svg>'
    )


def _ticks(span: float, most: int = 8) -> list[float]:
    """Round tick positions (1, 2 or 5 times a power of ten seconds, or whole minutes) over 0..span."""
    steps = [m * 10**e for e in range(-2, 6) for m in (1, 2, 5)] + [60, 120, 300, 600, 1800, 3600]
    step = min((s for s in sorted(steps) if span / s <= most), default=span)
    return [i * step for i in range(int(span / step) + 1)]


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt_seconds(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.2f} s"


def _fmt_duration(seconds: float) -> str:
    """`0 s`, `2.5 s`, `4 min 10 s`, `1 h 02 min`: for people, not for machines."""
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _fmt_when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _fmt_size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    exponent = min(int(math.log(count, 1024)), 3)
    return f"{count / 1024**exponent:.1f} {('KiB', 'MiB', 'GiB')[exponent - 1]}"


_TEMPLATES = Environment(loader=PackageLoader("omni_recovery", "templates"), autoescape=True)
_TEMPLATES.filters.update(
    when=_fmt_when,
    size=_fmt_size,
    seconds=_fmt_seconds,
    short=_short,
    file_url=lambda path: Path(path).absolute().as_uri(),
)
