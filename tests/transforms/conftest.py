"""The adaptation, planner and layout tests share the default tiny demo environment and its model."""

from __future__ import annotations

from pathlib import Path

import pytest

from transforms.environment_model import Environment, environment_from_folder


@pytest.fixture(scope="session")
def demo_root(tiny_demo_root: Path) -> Path:
    return tiny_demo_root


@pytest.fixture(scope="session")
def demo(demo_root: Path) -> Environment:
    return environment_from_folder(demo_root)
