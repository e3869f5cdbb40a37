"""Fixtures of the catalog tests (ingest, catalog, IO managers, register-isos), shared by their conftests.

- `demo_env`, `demo_set`: the backup-set fixtures (a tiny signed demo set, id t1), reused as is.
- `second_set`: another set (id c2) of the same environment, for two sets side by side.
- `catalog_database_url` (module): a database of its own on the session's PostgreSQL server, migrated,
  so the catalog rows of these tests never meet other tests' rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from omni_recovery.backupset.signing import load_signing_key
from omni_recovery.backupset.writer import create_backup_set
from omni_recovery.db.schema import init_database
from tests.backupset.conftest import PASSPHRASE, SMALL_SET, DemoSet, demo_env, demo_set
from tests.conftest import PostgresForTests

__all__ = ["PASSPHRASE", "DemoSet", "catalog_database_url", "demo_env", "demo_set", "second_set"]


@pytest.fixture(scope="session")
def second_set(demo_set: DemoSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another backup set (id c2) of the same environment."""
    output = tmp_path_factory.mktemp("second") / "set"
    create_backup_set(
        demo_set.env,
        str(output),
        signing_key=load_signing_key(demo_set.key_path),
        passphrase=PASSPHRASE,
        options=replace(SMALL_SET, backup_set_id="c2"),
    )
    return output


@pytest.fixture(scope="module")
def catalog_database_url(postgres_server: PostgresForTests) -> Iterator[str]:
    url = postgres_server.create_database("omni_catalog")
    init_database(url)
    try:
        yield url
    finally:
        postgres_server.drop_database(url)
