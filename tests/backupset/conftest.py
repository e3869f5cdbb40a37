"""The backup-set tests use the shared demo fixtures `demo_env`, `demo_set` (see tests/conftest.py).

The names below stay importable from here for the tests that use them.
"""

from __future__ import annotations

from tests.demo_fixtures import PASSPHRASE, SMALL_SET, DemoSet

__all__ = ["PASSPHRASE", "SMALL_SET", "DemoSet"]
