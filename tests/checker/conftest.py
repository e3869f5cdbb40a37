"""The checker tests reuse the shared demo fixtures: a good, signed, encrypted demo set (and a second set)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.demo_fixtures import PASSPHRASE, DemoSet, extra_set

__all__ = ["PASSPHRASE"]


@pytest.fixture(scope="session")
def other_set(demo_set: DemoSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another backup set (id t2) of the same environment, signed by the same key."""
    return extra_set(demo_set, tmp_path_factory, "other", "t2")
