"""The adaptation, planner and layout tests share the default tiny demo environment and its model, and
the planner tests its plan onto a same-shaped inventory."""

from __future__ import annotations

from pathlib import Path

import pytest

from omni_recovery.adapt.inventory import Inventory
from omni_recovery.envstate.folder import environment_from_folder
from tests.builders import same_shaped
from transforms.documents import Environment
from transforms.plan import Plan, generate_plan


@pytest.fixture(scope="session")
def demo_root(tiny_demo_root: Path) -> Path:
    return tiny_demo_root


@pytest.fixture(scope="session")
def demo(demo_root: Path) -> Environment:
    return environment_from_folder(demo_root)


@pytest.fixture(scope="module")
def inventory(demo: Environment) -> Inventory:
    return same_shaped(demo)


@pytest.fixture(scope="module")
def plan(demo: Environment, inventory: Inventory) -> Plan:
    return generate_plan(demo, inventory, "basic", "demo-20261124t0200z")
