"""billing-db's volume: a real PostgreSQL data folder that starts and reads back, and only when its
owner and mode are as PostgreSQL requires."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from omni_recovery.envstate import database_volume
from omni_recovery.envstate.demo import DemoOptions, write_demo_environment
from omni_recovery.errors import RecoveryError


@pytest.fixture(scope="module")
def demo_with_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo-db") / "env"
    write_demo_environment(root, DemoOptions(volume_scale="tiny", applications=3, database=True))
    return root


def test_the_last_application_is_billing_db_with_a_real_data_folder(demo_with_database: Path):
    apps = sorted(p.name for p in (demo_with_database / "applications").iterdir())
    assert len(apps) == 3 and database_volume.APP[0] in apps
    data = demo_with_database / "volumes" / "billing-db" / "pgdata" / "files" / database_volume.DATA_FOLDER
    assert (data / "PG_VERSION").read_text().strip().isdigit()
    st = data.stat()
    assert st.st_mode & 0o777 == 0o700
    if os.geteuid() == 0:
        assert pwd.getpwuid(st.st_uid).pw_name == database_volume.SYSTEM_USER
    found = database_volume.read_back(data)
    assert (found.rows, found.digest, found.equal) == (
        database_volume.ROWS,
        database_volume.ROWS_DIGEST,
        True,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="giving the folder to another owner needs root")
def test_postgresql_refuses_a_data_folder_with_another_owner_or_mode(tmp_path: Path):
    data = tmp_path / "pgdata"
    database_volume.write_cluster(data)
    os.chmod(data, 0o755)
    with pytest.raises(RecoveryError, match="invalid permissions"):
        database_volume.read_back(data)
    os.chmod(data, 0o700)
    os.chown(data, 0, 0)
    with pytest.raises(RecoveryError, match="wrong ownership"):
        database_volume.read_back(data)


def test_without_the_option_no_database_is_made(tiny_demo_root: Path):
    assert not (tiny_demo_root / "volumes" / database_volume.APP[0]).exists()
