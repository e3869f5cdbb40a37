"""The plan overlay: what the last recovery's analysis recommends for the next one.

`omni performance optimize --apply-recommendations` writes `<workspace>/plan-overlay.yaml` (atomically)
with the values the measured run suggests; `plan-generate` reads it and records each value in the
new plan as an adaptation of kind `recommendation`, so the next plan carries it, and execute-plan
without --parallel-factor runs at the plan's recommended factor. The format
(docs/practise-the-recovery.md) is one mapping:

    parallel_factor: 4      # execute-plan --parallel-factor for the next recovery
    reasons: {parallel_factor: "steps waited for a free slot (reached 2.0 of 2)"}

What can go wrong: a file that is not such a mapping, or a parallel factor outside 1..64, is refused
in one line naming the file and the key; no file means no overlay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from omni_recovery.errors import RecoveryError
from omni_recovery.whole_file import write_text_whole
from omni_recovery.yaml_text import load_yaml, safe_dump
from transforms.adapt.vocabulary import Adaptation
from transforms.recommendations import Recommendation

OVERLAY_FILE = "plan-overlay.yaml"
MAX_PARALLEL_FACTOR = 64  # execute-plan's bound


def overlay_path(workspace: Path) -> Path:
    return workspace / OVERLAY_FILE


def overlay_from(found: list[Recommendation]) -> dict[str, Any]:
    """The overlay values the recommendations for the next recovery give (the parallel factor)."""
    overlay: dict[str, Any] = {}
    for item in found:
        if item.kind == "parallel-factor":
            overlay["parallel_factor"] = int(item.evidence["suggested"])
            overlay["reasons"] = {"parallel_factor": item.message}
    return overlay


def write_overlay(workspace: Path, overlay: dict[str, Any]) -> Path:
    """`overlay` written whole (temporary name, then rename) as the workspace's plan overlay."""
    path = overlay_path(workspace)
    write_text_whole(path, safe_dump(overlay, sort_keys=True))
    return path


def read_overlay(workspace: Path) -> dict[str, Any]:
    """The workspace's plan overlay ({} when there is none), checked."""
    path = overlay_path(workspace)
    if not path.is_file():
        return {}
    try:
        overlay = load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RecoveryError(f"{path}: not YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(overlay, dict):
        raise RecoveryError(f"{path}: expected a mapping of recommended values")
    factor = overlay.get("parallel_factor")
    if factor is not None and (
        not isinstance(factor, int) or isinstance(factor, bool) or not 1 <= factor <= MAX_PARALLEL_FACTOR
    ):
        raise RecoveryError(f"{path}: parallel_factor: expected a whole number 1..{MAX_PARALLEL_FACTOR}")
    return overlay


def overlay_adaptations(workspace: Path) -> tuple[Adaptation, ...]:
    """The plan's lines for the workspace's overlay: one `recommendation` adaptation per value."""
    overlay = read_overlay(workspace)
    if overlay.get("parallel_factor") is None:
        return ()
    reason = str((overlay.get("reasons") or {}).get("parallel_factor", "recommended"))
    return (
        Adaptation(
            "recommendation",
            "execute-plan --parallel-factor",
            "2",
            str(overlay["parallel_factor"]),
            f"from {overlay_path(workspace)}: {reason}",
        ),
    )


def recommended_parallel_factor(adaptations: tuple[Adaptation, ...]) -> int | None:
    """The parallel factor a plan's `recommendation` adaptations carry, if any."""
    for item in adaptations:
        if item.kind == "recommendation" and item.subject == "execute-plan --parallel-factor":
            return int(item.new)
    return None
