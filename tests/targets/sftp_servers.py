"""Real SSH servers on 127.0.0.1 for the SSH target tests: in-process asyncssh SFTP servers (one per
node, each with its own port, host key and folder, as the sshfs project tests itself) and, where it is
installed, OpenSSH's sshd run on a high port with its own host key and authorized_keys.

An `SftpServer` serves its folder as "/" (chroot) to the one client key it authorizes, and records
what it saw (`events`). Its account may run no command, or only `sha256sum` (`sha256sum`), or
hardware_scan's read of this machine's /proc and /sys (`hardware`); or the server refuses any
command channel (`no_exec`). It can misbehave on purpose, as a broken or hostile target would: flip
one byte of every write (`flip`), say the disk is full (`disk_full`), refuse files under a folder
(`deny`), or drop every connection once some bytes were written (`drop_after`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import getpass
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from omni_recovery.adapt import hardware_scan
from omni_recovery.targets.ssh import SshAccess
from tests.ports import listens, unused_port

USER = "omni"


def new_key(path: Path | None = None) -> asyncssh.SSHKey:
    """A new ed25519 key, written to `path` (OpenSSH format, mode 0600) when given."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    if path is not None:
        key.write_private_key(str(path))
        path.chmod(0o600)
        key.write_public_key(str(path) + ".pub")
    return key


def public_line(key: asyncssh.SSHKey) -> str:
    return key.export_public_key().decode().strip()


def free_port() -> int:
    """A free loopback port outside the ephemeral range (tests/ports.py says why)."""
    return unused_port()


@dataclass
class Behaviour:
    flip: bool = False
    disk_full: bool = False
    deny: str | None = None  # a folder (relative to the served one) whose files cannot be opened
    drop_after: int | None = None  # bytes written, after which every connection is dropped
    sha256sum: bool = False  # the account may run `sha256sum -- PATH` (no other command)
    hardware: bool = False  # the account may run hardware_scan's read of /proc and /sys (on this machine)
    no_exec: bool = False  # the server refuses every command channel (SFTP only); read when it starts
    written: int = 0
    read: int = 0  # bytes the clients read


class _Files(asyncssh.SFTPServer):
    """The served folder, with the misbehaviour its server was told to show."""

    def __init__(self, chan: asyncssh.SSHServerChannel, server: SftpServer) -> None:
        super().__init__(chan, chroot=str(server.folder).encode())
        self.server = server

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        deny = self.server.behaviour.deny
        if deny and path.decode().lstrip("/").startswith(deny.strip("/") + "/"):
            raise PermissionError(errno.EACCES, "Permission denied")
        self.server.events.append(f"open {path.decode()}")
        return super().open(path, pflags, attrs)

    def readlink(self, path: bytes) -> bytes:
        """The link's target as stored, as OpenSSH's sftp-server says it (asyncssh's chroot would
        resolve a relative one)."""
        return os.fsencode(os.readlink(self.map_path(path)))

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        data = super().read(file_obj, offset, size)
        assert isinstance(data, bytes)  # the local file's read, not a coroutine
        self.server.behaviour.read += len(data)
        return data

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        behaviour = self.server.behaviour
        if behaviour.disk_full:
            raise OSError(errno.ENOSPC, "No space left on device")
        behaviour.written += len(data)
        if behaviour.drop_after is not None and behaviour.written > behaviour.drop_after:
            self.server.drop_connections()
            raise OSError(errno.EIO, "connection dropped")
        if behaviour.flip and data:
            data = bytes([data[0] ^ 0x01]) + data[1:]
        written = super().write(file_obj, offset, data)
        assert isinstance(written, int)  # the local file's write, not a coroutine
        return written


class _Gate(asyncssh.SSHServer):
    def __init__(self, server: SftpServer) -> None:
        self.server = server

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.server.connections.append(conn)

    def begin_auth(self, username: str) -> bool:
        self.server.events.append(f"auth {username}")
        return True


class _Server:
    """What the tests ask of either server: its address, host key and the client's access (the file
    bytes by OpenSSH's ssh where the server lets the account run commands: sshd)."""

    data_channel = "auto"

    folder: Path
    client_key_file: Path
    host_key: asyncssh.SSHKey
    port: int
    user: str

    @property
    def host_key_line(self) -> str:
        return public_line(self.host_key)

    def url(self, path: str) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path}"

    def access(self, **changes: Any) -> SshAccess:
        access = SshAccess(self.host_key_line, str(self.client_key_file), data_channel=self.data_channel)
        return dataclasses.replace(access, **changes)


@dataclass
class SftpServer(_Server):
    """An asyncssh SFTP server on 127.0.0.1 serving `folder`, on its own event loop thread."""

    folder: Path
    client_key_file: Path
    host_key: asyncssh.SSHKey = field(default_factory=new_key)
    behaviour: Behaviour = field(default_factory=Behaviour)
    events: list[str] = field(default_factory=list)
    connections: list[asyncssh.SSHServerConnection] = field(default_factory=list)
    port: int = 0

    def start(self) -> SftpServer:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        authorized = asyncssh.import_authorized_keys(Path(str(self.client_key_file) + ".pub").read_text())
        self.acceptor: Any = self._call(self._listen(authorized))
        self.port = self.acceptor.sockets[0].getsockname()[1]
        return self

    async def _listen(self, authorized: asyncssh.SSHAuthorizedKeys) -> Any:
        return await asyncssh.create_server(
            lambda: _Gate(self),
            "127.0.0.1",
            self.port,
            server_host_keys=[self.host_key],
            authorized_client_keys=authorized,
            sftp_factory=lambda chan: _Files(chan, self),
            process_factory=None if self.behaviour.no_exec else self._command,
            allow_scp=False,
        )

    async def _command(self, process: asyncssh.SSHServerProcess[str]) -> None:
        """`sha256sum -- PATH` of a path under the served folder, by the real sha256sum, when the
        behaviour allows it; any other command, or any command when it does not, is refused."""
        if self.behaviour.hardware and process.command == hardware_scan.COMMAND:
            self.events.append("exec hardware")
            child = await asyncio.create_subprocess_exec("sh", "-c", process.command, stdout=subprocess.PIPE)
            out, _ = await child.communicate()
            process.stdout.write(out.decode())
            process.exit(child.returncode or 0)
            return
        words = shlex.split(process.command or "")
        self.events.append(f"exec {' '.join(words)}")
        if not self.behaviour.sha256sum or len(words) != 3 or words[:2] != ["sha256sum", "--"]:
            process.stderr.write("this account may not run commands\n")
            process.exit(126)
            return
        local = self.folder / words[2].lstrip("/")
        child = await asyncio.create_subprocess_exec(
            "sha256sum", "--", str(local), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = await child.communicate()
        process.stdout.write(out.decode().replace(str(local), words[2]))
        process.stderr.write(err.decode())
        process.exit(child.returncode or 0)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    user: str = USER

    def sftp_path(self, relpath: str) -> str:
        """The SFTP path of `folder`/relpath (the folder is the client's "/")."""
        return f"/{relpath}"

    async def _close(self) -> None:
        self.drop_connections()
        self.acceptor.close()
        await self.acceptor.wait_closed()

    def drop_connections(self) -> None:
        """Cut every connection at once, as a killed server or a pulled cable would."""
        for conn in self.connections:
            conn.abort()
        self.connections.clear()

    def stop(self) -> None:
        self._call(self._close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


SSHD = shutil.which("sshd") or next(
    (p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if Path(p).exists()), None
)
NO_SSHD = "OpenSSH's sshd is not installed (apt-get install openssh-server; .ci/run installs it)"


@dataclass
class OpenSshServer(_Server):
    """OpenSSH's sshd on a high port of 127.0.0.1, with its own host key and authorized_keys, serving
    the account that runs the tests (the SFTP paths are real paths of this machine)."""

    folder: Path
    client_key_file: Path
    port: int = 0
    extra_config: str = ""  # more sshd_config lines, e.g. "ForceCommand internal-sftp\n" (read at start)
    data_channel = "openssh"  # every file by ssh: the tests of sshd test that channel

    def start(self) -> OpenSshServer:
        """Start sshd; started again after `stop()`, it has the same port and host key."""
        assert SSHD is not None, NO_SSHD
        key_file = self.folder / "host_ed25519"
        self.host_key = asyncssh.read_private_key(key_file) if key_file.exists() else new_key(key_file)
        shutil.copy(str(self.client_key_file) + ".pub", self.folder / "authorized_keys")
        self.port = self.port or free_port()
        config = self.folder / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.folder}/host_ed25519\n"
            f"AuthorizedKeysFile {self.folder}/authorized_keys\nPidFile {self.folder}/sshd.pid\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            "UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
            "Subsystem sftp internal-sftp\n" + self.extra_config
        )
        Path("/run/sshd").mkdir(exist_ok=True)  # its privilege separation folder
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)], stderr=(self.folder / "sshd.log").open("ab")
        )
        deadline = time.monotonic() + 120  # a loaded machine starts sshd slowly
        while not listens(self.process.pid, self.port):  # sshd itself, not whoever else took the port
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {(self.folder / 'sshd.log').read_text()}")
            time.sleep(0.05)
        return self

    user: str = field(default_factory=getpass.getuser)

    def sftp_path(self, relpath: str) -> str:
        """The SFTP path of `folder`/relpath (sshd serves this machine's paths)."""
        return str(self.folder / relpath)

    def stop(self) -> None:
        """Kill sshd and every session it serves at once, as a crashed or powered-off host."""
        for pid in [self.process.pid, *_descendants(self.process.pid)]:  # each session is its own group
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(10)


def _descendants(pid: int) -> list[int]:
    """The processes under `pid`, from /proc (sshd's sessions start sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat_file.parent.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found
