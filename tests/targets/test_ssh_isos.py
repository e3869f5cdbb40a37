"""`register-isos --path ssh://…`: a backup set on another machine, read over SFTP by range (only the
parts of each ISO the catalog needs cross the network), from a host that proves its pinned key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from omni_recovery.backup.writer import WriterOptions
from omni_recovery.cli import main
from omni_recovery.db.connection import connect
from omni_recovery.envstate.demo import DemoOptions
from tests.backupset.conftest import DemoSet
from tests.demo_fixtures import signed_set, write_demo
from tests.targets.sftp_servers import SftpServer, new_key, public_line
from tests.test_registered_sets import workspace  # noqa: F401


@pytest.fixture(scope="module")
def big_set(tmp_path_factory: pytest.TempPathFactory) -> DemoSet:
    """A demo set whose volumes hold files of 8 MiB: most of its bytes are file data, which
    registering never needs to read."""
    env = write_demo(
        tmp_path_factory,
        "env-big-files",
        DemoOptions(volume_scale="tiny", applications=2, seed=3, big_file_bytes=8 << 20),
    )
    return signed_set(env, tmp_path_factory.mktemp("big-set"), WriterOptions())


@pytest.fixture
def served_set(big_set: DemoSet, sftp_server: SftpServer) -> str:
    """The set's ISOs in the SFTP server's folder; their ssh:// URL."""
    shutil.copytree(big_set.output, sftp_server.folder / "isos/set1")
    return sftp_server.url("/isos/set1")


def register(location: str, into: Path, *ssh: str) -> Result:
    args = ["register-isos", "--path", location, "--workspace", str(into), "--quiet", *ssh]
    return CliRunner().invoke(main, args)


def test_a_set_over_ssh_is_registered_reading_only_part_of_each_iso(
    served_set: str,
    sftp_server: SftpServer,
    big_set: DemoSet,
    workspace: Path,  # noqa: F811
    fresh_database_url: str,
) -> None:
    ssh = ["--ssh-host-key", sftp_server.host_key_line, "--ssh-identity", str(sftp_server.client_key_file)]
    result = register(served_set, workspace, *ssh)
    assert result.exit_code == 0, result.output
    isos = sorted(big_set.output.glob("*.iso"))
    with connect(fresh_database_url) as conn:
        registered = conn.execute("SELECT count(*) FROM omni.isos").fetchone()
        files = conn.execute("SELECT count(*) FROM omni.files").fetchone()
    assert registered == (len(isos),) and files is not None and files[0] > 0
    total = sum(iso.stat().st_size for iso in isos)
    # Three passes read each ISO's records and documents (ingest, catalog, the blocking check), which
    # ask the host once for each block, never for the 8 MiB files that are most of the set: under a
    # quarter of its bytes cross the network.
    assert 0 < sftp_server.behaviour.read < total / 4, (sftp_server.behaviour.read, total)


def test_a_host_that_cannot_prove_the_given_key_is_refused_before_anything_is_read(
    served_set: str,
    sftp_server: SftpServer,
    workspace: Path,  # noqa: F811
) -> None:
    other = public_line(new_key())
    result = register(
        served_set, workspace, "--ssh-host-key", other, "--ssh-identity", str(sftp_server.client_key_file)
    )
    assert result.exit_code == 1
    assert "expected SHA256:" in result.output and "the host offered SHA256:" in result.output
    assert "Traceback" not in result.output and sftp_server.behaviour.read == 0
    assert not any(event.startswith("open") for event in sftp_server.events)


def test_an_ssh_path_without_a_host_key_is_refused_naming_the_option(
    served_set: str,
    workspace: Path,  # noqa: F811
) -> None:
    result = register(served_set, workspace)
    assert result.exit_code == 1 and "--ssh-host-key" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_another_command_given_an_ssh_path_refuses_the_unpinned_host_in_one_line(
    served_set: str, sftp_server: SftpServer
) -> None:
    """fsspec's own SSH filesystems would accept any host key: an ssh:// set is read by ours, which
    refuses a host no key was pinned for, before connecting."""
    result = CliRunner().invoke(main, ["validate-isos", "--path", served_set])
    assert result.exit_code == 1 and "no host key is pinned for this host" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not sftp_server.connections
