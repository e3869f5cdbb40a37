"""The recovery plan's model: phases, steps, the entries of every adaptation, and the plan itself.

Plain frozen dataclasses (`Plan`, `Step`, `NodeEntry`, `PlacementEntry`, `PoolEntry`, `PathEntry`,
`SubnetEntry`, `AddressEntry`), the phases in their order, and `PlanError`, which lists every problem
of a plan with the YAML line at fault. `content_sha256` identifies a plan by its content.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from omni_recovery.errors import RecoveryError
from transforms.adapt.vocabulary import Adaptation, AdaptationPolicy

PLAN_FORMAT = "omni-recovery-plan/1"
PHASES = (
    "directors",
    "ring",
    "orchestrators",
    "cluster",
    "storage",
    "volumes",
    "core-services",
    "applications-critical",
    "applications-standard",
    "applications-low",
    "verification",
    "report",
    "post-recovery-backup",
)
PHASE_INDEX = {p: i for i, p in enumerate(PHASES)}
ON_FAILURE = ("stop", "skip-dependents", "continue")
GATE = "gate"  # the kind of step that only marks a phase boundary (`gate/<the phase it opens>`)
_COMPONENT = re.compile(r"^[a-z]+:[^\s]+$")


class PlanError(RecoveryError):
    """A plan (usually an edited one) is not valid; `problems` lists (line, message), line 0 when unknown."""

    def __init__(self, problems: list[tuple[int, str]], source: str = "recovery-plan.yaml") -> None:
        self.problems = sorted(set(problems))
        self.source = source
        lines = [f"{source}:{line}: {msg}" if line else f"{source}: {msg}" for line, msg in self.problems]
        super().__init__("the recovery plan is not valid:\n  " + "\n  ".join(lines))


# -- the model ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    id: str
    phase: str
    action: str
    component: str | None
    depends_on: tuple[str, ...]
    wait: str
    timeout_s: int
    retries: int
    on_failure: str
    fallback: str
    node: str | None = None
    line: int = field(default=0, compare=False)

    @property
    def kind(self) -> str:
        """The first part of the id (`ring/main` → ring): what the step does."""
        return self.id.split("/", 1)[0]

    @property
    def is_gate(self) -> bool:
        """A phase boundary: no work, no node; the steps of its phase wait for it, it for the last
        steps of the phase before."""
        return is_gate(self.id)


def is_gate(step_id: str) -> bool:
    """Whether `step_id` names a gate step (one recorded in the database, say)."""
    return step_id.startswith(f"{GATE}/")


@dataclass(frozen=True)
class NodeEntry:
    name: str
    old_node: str | None
    role: str  # director | compute | storage | spare
    director: str | None
    root: str
    cpu_cores: int
    memory_mib: int
    disk_gib: int
    reserved_cpu: int
    reserved_memory_mib: int
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class PlacementEntry:
    vm_id: str
    name: str
    component: str
    director: str
    node: str
    cpu: int
    memory_mib: int
    disk_gib: int
    old_director: str
    old_cpu: int
    old_memory_mib: int
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class PoolEntry:
    name: str
    storage_class: str
    root: str
    capacity_gib: int
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class PathEntry:
    subject: str
    pool: str
    storage_class: str
    old_path: str
    new_path: str
    size_gib: float
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class SubnetEntry:
    name: str
    old: str
    new: str
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class AddressEntry:
    subnet: str
    owner: str
    old: str
    new: str
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Plan:
    backup_set_id: str
    environment: str
    adaptation_mode: str
    policy: AdaptationPolicy
    nodes: tuple[NodeEntry, ...]
    placements: tuple[PlacementEntry, ...]
    pools: tuple[PoolEntry, ...]
    paths: tuple[PathEntry, ...]
    subnets: tuple[SubnetEntry, ...]
    addresses: tuple[AddressEntry, ...]
    steps: tuple[Step, ...]
    adaptations: tuple[Adaptation, ...]
    recorded_sha256: str | None = field(default=None, compare=False)

    @property
    def sha256(self) -> str:
        """sha256 of the plan's content (everything but the recorded hash and YAML line numbers)."""
        return content_sha256(self)

    @property
    def edited(self) -> bool:
        """True when the plan was read back and its content no longer matches the hash it was written with."""
        return self.recorded_sha256 is not None and self.recorded_sha256 != self.sha256

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)


def step_count(plan: Plan) -> str:
    """ "57 steps and 12 gates": the steps that do work, and the phase boundaries."""
    gates = sum(1 for s in plan.steps if s.is_gate)
    return f"{len(plan.steps) - gates} steps and {gates} gates"


def _plain(value: Any) -> Any:
    """A dataclass tree as plain JSON data, without `line` fields."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k not in ("line", "recorded_sha256")}
    return value


def content_sha256(plan: Plan) -> str:
    data = _plain(asdict(plan))
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
