"""The adaptation, planner and layout tests share the default tiny demo environment and its model."""

from __future__ import annotations

from pathlib import Path

import pytest

from omni_recovery.envstate.folder import environment_from_folder
from transforms.documents import Environment


@pytest.fixture(scope="session")
def demo_root(tiny_demo_root: Path) -> Path:
    return tiny_demo_root


@pytest.fixture(scope="session")
def demo(demo_root: Path) -> Environment:
    return environment_from_folder(demo_root)
