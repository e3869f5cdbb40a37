"""Fixtures of the tests over SSH: servers on 127.0.0.1 (tests/targets/sftp_servers.py), a client key,
and a fresh client connection for each test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from omni_recovery.targets.ssh import close_sessions
from omni_recovery.targets.ssh_fs import forget_ssh_locations
from tests.targets.sftp_servers import NO_SSHD, SSHD, OpenSshServer, SftpServer, new_key


@pytest.fixture(autouse=True)
def fresh_ssh_connections() -> Iterator[None]:
    yield
    close_sessions()  # each test connects anew: a server of one test never serves the next
    forget_ssh_locations()  # nor is a host pinned by one test trusted in the next


@pytest.fixture
def client_key(tmp_path: Path) -> Path:
    path = tmp_path / "id_ed25519"
    new_key(path)
    return path


@pytest.fixture
def sftp_servers(tmp_path: Path, client_key: Path) -> Iterator[Callable[[str], SftpServer]]:
    """Start an in-process SFTP server serving tmp_path/<name> (its "/"); all stopped at the end."""
    started: list[SftpServer] = []

    def start(name: str) -> SftpServer:
        folder = tmp_path / name
        folder.mkdir()
        server = SftpServer(folder, client_key).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def sftp_server(sftp_servers: Callable[[str], SftpServer]) -> SftpServer:
    return sftp_servers("node-a")


@pytest.fixture
def openssh(tmp_path: Path, client_key: Path) -> Iterator[OpenSshServer]:
    if SSHD is None:
        pytest.skip(NO_SSHD)
    if os.geteuid() != 0 and not Path("/run/sshd").is_dir():
        pytest.skip("sshd needs /run/sshd, which only root can make: run the tests as root once")
    folder = tmp_path / "sshd"
    folder.mkdir()
    server = OpenSshServer(folder, client_key).start()
    yield server
    server.stop()
