"""Tests never see the user's workspace or settings (the autouse fixtures of tests/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

from omni_recovery.settings import load_settings
from tests.conftest import TEST_DATABASE_URL_ENV


def test_a_test_sees_its_own_working_folder_and_none_of_the_user_s_settings(tmp_path: Path) -> None:
    assert Path.cwd() == tmp_path
    assert load_settings().workspace == tmp_path / ".omni-recovery"
    assert load_settings().database_url is None
    leaked = [n for n in os.environ if n.startswith("OMNI_RECOVERY_") and n != TEST_DATABASE_URL_ENV]
    assert not leaked and "DAGSTER_HOME" not in os.environ, leaked
