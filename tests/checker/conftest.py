"""The checker tests reuse the backup-set fixtures: a good, signed, encrypted demo set (and a second set)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from omni_recovery.backupset.signing import load_signing_key
from omni_recovery.backupset.writer import create_backup_set
from tests.backupset.conftest import PASSPHRASE, SMALL_SET, DemoSet, demo_env, demo_set

__all__ = ["PASSPHRASE", "demo_env", "demo_set"]


@pytest.fixture(scope="session")
def other_set(demo_set: DemoSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another backup set (id t2) of the same environment, signed by the same key."""
    output = tmp_path_factory.mktemp("other") / "set"
    create_backup_set(
        demo_set.env,
        str(output),
        signing_key=load_signing_key(demo_set.key_path),
        passphrase=PASSPHRASE,
        options=replace(SMALL_SET, backup_set_id="t2"),
    )
    return output
