"""The recovery plan as a picture: one column per phase, one box per step, an arrow per dependency.

A gate step (the boundary between two phases) is drawn dashed and white at the top of its phase: the
arrows of the phase before end on it, and the phase's steps start from it.

`plan_to_svg(plan)` writes a self-contained SVG by hand (no Graphviz needed), for the report and the
README; `plan_to_dot(plan)` gives the same graph as Graphviz DOT text for anyone who wants to lay it
out differently (`dot -Tsvg`).
"""

from __future__ import annotations

from html import escape

from transforms.plan import PHASES, Plan, step_count

COLUMN_WIDTH = 210
BOX_WIDTH = 180
ROW_HEIGHT = 30
BOX_HEIGHT = 22
TOP = 60
LEFT = 20
PHASE_COLOURS = {
    "directors": "#dbe9f6",
    "ring": "#dbe9f6",
    "orchestrators": "#e3f1df",
    "cluster": "#e3f1df",
    "storage": "#fbe8d3",
    "volumes": "#fbe8d3",
    "core-services": "#efe1f3",
    "applications-critical": "#f8d7da",
    "applications-standard": "#fff3cd",
    "applications-low": "#eeeeee",
    "verification": "#d1ecf1",
    "report": "#d1ecf1",
    "post-recovery-backup": "#d1ecf1",
}


def _layout(plan: Plan) -> tuple[list[str], dict[str, tuple[float, float]]]:
    """Phases present (in order) and the top-left corner of every step's box."""
    phases = [p for p in PHASES if any(s.phase == p for s in plan.steps)]
    where: dict[str, tuple[float, float]] = {}
    for col, phase in enumerate(phases):
        steps = [s for s in plan.steps if s.phase == phase]
        for row, step in enumerate(steps):
            where[step.id] = (LEFT + col * COLUMN_WIDTH, TOP + row * ROW_HEIGHT)
    return phases, where


def _label(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plan_to_svg(plan: Plan) -> str:
    """The phase/step graph as an SVG document (a string)."""
    phases, where = _layout(plan)
    rows = max((sum(1 for s in plan.steps if s.phase == p) for p in phases), default=1)
    width = LEFT * 2 + len(phases) * COLUMN_WIDTH
    height = TOP + rows * ROW_HEIGHT + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f"<title>Recovery plan {escape(plan.environment)} ({escape(plan.backup_set_id)})</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#888"/></marker></defs>',
        f'<text x="{LEFT}" y="20" font-size="14" font-weight="bold">'
        f"Recovery plan: {escape(plan.environment)} — {step_count(plan)}, "
        f"{len(plan.adaptations)} adaptations ({escape(plan.adaptation_mode)})</text>",
    ]
    for col, phase in enumerate(phases):
        x = LEFT + col * COLUMN_WIDTH
        out.append(f'<text x="{x}" y="{TOP - 12}" font-weight="bold">{col + 1}. {escape(phase)}</text>')
    for step in plan.steps:
        x2, y2 = where[step.id]
        for dep in step.depends_on:
            if dep not in where:
                continue
            x1, y1 = where[dep]
            mid1, mid2 = y1 + BOX_HEIGHT / 2, y2 + BOX_HEIGHT / 2
            out.append(
                f'<line x1="{x1 + BOX_WIDTH}" y1="{mid1}" x2="{x2}" y2="{mid2}" '
                f'stroke="#bbb" stroke-width="0.7" marker-end="url(#arrow)"/>'
            )
    for step in plan.steps:
        bx, by = where[step.id]
        colour = "#ffffff" if step.is_gate else PHASE_COLOURS.get(step.phase, "#ffffff")
        dashed = ' stroke-dasharray="3 2"' if step.is_gate else ""
        out.append(
            f"<g><title>{escape(step.id)}: {escape(step.action)}\nwait: {escape(step.wait)}\n"
            f"timeout {step.timeout_s}s, retries {step.retries}, on failure {escape(step.on_failure)}</title>"
            f'<rect x="{bx}" y="{by}" width="{BOX_WIDTH}" height="{BOX_HEIGHT}" rx="4" fill="{colour}" '
            f'stroke="#666" stroke-width="0.8"{dashed}/>'
            f'<text x="{bx + 6}" y="{by + 15}">{escape(_label(step.id))}</text></g>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _dot(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def plan_to_dot(plan: Plan) -> str:
    """The phase/step graph as Graphviz DOT text, one cluster per phase."""
    out = [
        "digraph recovery_plan {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontsize=10];',
    ]
    for i, phase in enumerate(p for p in PHASES if any(s.phase == p for s in plan.steps)):
        out.append(f'  subgraph cluster_{i} {{ label="{i + 1}. {phase}";')
        for step in plan.steps:
            if step.phase == phase:
                colour = PHASE_COLOURS.get(phase, "#ffffff")
                look = f'fillcolor="{colour}"'
                if step.is_gate:
                    look = 'style="rounded,filled,dashed", fillcolor="#ffffff"'
                out.append(f'    "{_dot(step.id)}" [{look}];')
        out.append("  }")
    for step in plan.steps:
        for dep in step.depends_on:
            out.append(f'  "{_dot(dep)}" -> "{_dot(step.id)}";')
    out.append("}")
    return "\n".join(out) + "\n"
