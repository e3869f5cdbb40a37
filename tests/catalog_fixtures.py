"""Fixtures of the catalog tests (ingest, catalog, IO managers, register-isos), see tests/conftest.py.

- `demo_env`, `demo_set`: the shared demo fixtures (a tiny signed demo set, id t1), reused as is.
- `second_set`: another set (id c2) of the same environment, for two sets side by side.
- `catalog_database_url` (module): a database of its own on the session's PostgreSQL server, migrated,
  so the catalog rows of these tests never meet other tests' rows.
- `scratch_workspace()`, `scratch_settings()`: a workspace for a registered set, on tmpfs when there is one.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from omni_recovery.db.schema import init_database
from omni_recovery.settings import Settings
from tests.demo_fixtures import PASSPHRASE, DemoSet, extra_set

if TYPE_CHECKING:
    from tests.conftest import PostgresForTests

__all__ = [
    "PASSPHRASE",
    "DemoSet",
    "catalog_database_url",
    "scratch_settings",
    "scratch_workspace",
    "second_set",
]


@pytest.fixture(scope="session")
def second_set(demo_set: DemoSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another backup set (id c2) of the same environment."""
    return extra_set(demo_set, tmp_path_factory, "second", "c2")


@pytest.fixture(scope="module")
def catalog_database_url(postgres_server: PostgresForTests) -> Iterator[str]:
    url = postgres_server.create_database("omni_catalog")
    init_database(url)
    try:
        yield url
    finally:
        postgres_server.drop_database(url)


def scratch_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[Path, bool]:
    """A new folder on tmpfs when there is one (True: the caller removes it), else a pytest tmp folder."""
    # Dagster's SQLite instance commits an event per step, and SQLite commits are slow on the ext4 /tmp.
    shm = Path("/dev/shm")
    if shm.is_dir():
        return Path(tempfile.mkdtemp(prefix=f"omni-{name}-", dir=shm)), True
    return tmp_path_factory.mktemp(name), False


@contextmanager
def scratch_workspace(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A workspace folder for a registered set (see scratch_folder), removed at the end when on tmpfs."""
    folder, on_tmpfs = scratch_folder(tmp_path_factory, name)
    try:
        yield folder
    finally:
        if on_tmpfs:
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def scratch_settings(
    tmp_path_factory: pytest.TempPathFactory, name: str, database_url: str
) -> Iterator[Settings]:
    """Settings of a scratch workspace (see scratch_workspace) on the database `database_url`."""
    with scratch_workspace(tmp_path_factory, name) as workspace:
        yield Settings(workspace=workspace, database_url=database_url)
