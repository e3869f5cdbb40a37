"""The recovery plan: a DAG of steps in phases, every adaptation old → new, as YAML a person can edit.

One module per concern: `model` (the plan and its entries, phases, PlanError), `generate` (the four
adaptations of an environment onto an inventory, then the entries), `steps` (the DAG of steps),
`partial` (the steps a partial restore takes), `validate` (an edited plan checked against the
environment and the inventory, each problem naming its YAML line), `yaml_form` (to and from YAML)
and `tables` (polars tables for the database). See docs/recovery-plan.md for the plan's format and
phases.

`generate` and `tables` are imported when first named (they bring polars), so that reading and
checking a plan, which `execute-plan` does, does not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from transforms.plan.model import (
    GATE,
    ON_FAILURE,
    PHASE_INDEX,
    PHASES,
    PLAN_FORMAT,
    AddressEntry,
    NodeEntry,
    PathEntry,
    PlacementEntry,
    Plan,
    PlanError,
    PoolEntry,
    Step,
    SubnetEntry,
    content_sha256,
    is_gate,
    step_count,
)
from transforms.plan.partial import PartialRestore, partial_restore, plan_needs
from transforms.plan.steps import ESSENTIAL_SERVICES, build_steps
from transforms.plan.validate import find_cycle, validate_plan
from transforms.plan.wiring import step_needs, without_gates
from transforms.plan.yaml_form import plan_from_yaml, plan_to_yaml

if TYPE_CHECKING:
    from transforms.plan.generate import Adapted, adapt, generate_plan
    from transforms.plan.tables import plan_tables

_LAZY = {"Adapted": "generate", "adapt": "generate", "generate_plan": "generate", "plan_tables": "tables"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)


__all__ = [
    "ESSENTIAL_SERVICES",
    "GATE",
    "ON_FAILURE",
    "PHASES",
    "PHASE_INDEX",
    "PLAN_FORMAT",
    "Adapted",
    "AddressEntry",
    "NodeEntry",
    "PartialRestore",
    "PathEntry",
    "PlacementEntry",
    "Plan",
    "PlanError",
    "PoolEntry",
    "Step",
    "SubnetEntry",
    "adapt",
    "build_steps",
    "content_sha256",
    "find_cycle",
    "generate_plan",
    "is_gate",
    "partial_restore",
    "plan_from_yaml",
    "plan_needs",
    "plan_tables",
    "plan_to_yaml",
    "step_count",
    "step_needs",
    "validate_plan",
    "without_gates",
]
