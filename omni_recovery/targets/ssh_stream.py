"""OpenSSH's own client as the data channel of an SSH root: big files' bytes go through `ssh`, whose
cipher and packet code run in C in processes of their own, not through asyncssh's event loop (one
thread, its packet code in Python: a few tens of MB/s at most).

`channel_for(url, access, root)` gives the process's `OpenSshChannel` to a host: one master
connection (`ssh -M`, its control socket and a known_hosts file holding only the pinned host key in
a private folder; StrictHostKeyChecking=yes, so no trust on first use) logged in with the identity
file only. Each big file is then one `cat > TEMP` session over that master (`stream_to`); what the
file becomes (mode, mtime, fsync, the check of what landed, the rename) stays asyncssh's
(ssh_partial). None, so SFTP carries every byte, when the `ssh` program is missing, the key is the
agent's (no identity file), a bandwidth limit paces the host, the access asks for SFTP, or the
account may run no command.

What can go wrong: a host that does not prove the pinned key, or any other failure to connect, is a
TargetError naming the root (nothing sent).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import shlex
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from omni_recovery.targets.base import TargetError
from omni_recovery.targets.ssh_session import CIPHERS, KEEPALIVE_SECONDS, SshAccess, SshUrl

SSH = shutil.which("ssh")
READY = b"omni-ready"
PIPE_BYTES = 1 << 20  # the pipe into each `ssh`: fewer, larger hand-overs than Linux's 64 KiB
_ALIAS = "omni-pinned-host"  # the name the known_hosts file gives the pinned key, whatever the address


class OpenSshChannel:
    """One master connection of OpenSSH's `ssh` to a host, and the `ssh` sessions made through it."""

    def __init__(self, url: SshUrl, access: SshAccess, identity: str) -> None:
        self.url = url
        self.folder = Path(tempfile.mkdtemp(prefix="omni-ssh-"))  # short: a socket path has a limit
        (self.folder / "known_hosts").write_text(f"{_ALIAS} {access.host_key.strip()}\n")
        self.options = [
            *("-F", "none", "-T", "-p", str(url.port), "-i", identity),
            *(f"-o{option}" for option in _OPTIONS),
            f"-oUserKnownHostsFile={self.folder / 'known_hosts'}",
            f"-oControlPath={self.folder / 'master'}",
            f"-oCiphers={','.join(CIPHERS)}",
            *(("-l", url.user) if url.user else ()),
        ]
        self.master: subprocess.Popen[bytes] | None = None
        self.files = 0  # the files sent through it
        self.broken = False  # a session through it lost the connection

    def open(self, root: str) -> bool:
        """Start the master connection; False when the account may run no command there."""
        log = self.folder / "master.log"
        with log.open("wb") as errors:  # a file: the master must never block on a full stderr pipe
            self.master = subprocess.Popen(
                [SSH or "ssh", *self.options, "-oControlMaster=yes", self.url.host, _MASTER_COMMAND],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
            )
        assert self.master.stdout is not None
        # The command starts once the master listens on its socket: its first line says both are up.
        if self.master.stdout.readline().strip() == READY:
            return True
        code = self.master.wait()
        told = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        self.close()
        if code == 255:  # ssh's own failure, before any command ran
            raise TargetError(
                f"OpenSSH's ssh could not connect to {self.url.address}: "
                f"{told[-1] if told else 'exit status 255'}; nothing was sent",
                root=root,
            )
        return False

    @property
    def alive(self) -> bool:
        return not self.broken and self.master is not None and self.master.poll() is None

    def stream_to(self, path: str) -> subprocess.Popen[bytes]:
        """An `ssh` session writing what it is given on stdin to `path` on the host (truncated first)."""
        self.files += 1
        session = subprocess.Popen(
            [SSH or "ssh", *self.options, "-oControlMaster=no", self.url.host, f"cat > {shlex.quote(path)}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert session.stdin is not None
        with contextlib.suppress(OSError):  # above the system's limit: the default size
            fcntl.fcntl(session.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        return session

    def close(self) -> None:
        """End the master connection (it waits for the sessions still open) and remove its folder."""
        if self.master is not None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self.master.communicate(timeout=60)  # closes its stdin: the master's command ends
            if self.master.poll() is None:
                self.master.kill()
                self.master.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


_OPTIONS = (
    "BatchMode=yes",
    "StrictHostKeyChecking=yes",  # the pinned key or nothing: never accept-new
    f"HostKeyAlias={_ALIAS}",
    "GlobalKnownHostsFile=/dev/null",
    "UpdateHostKeys=no",
    "CheckHostIP=no",
    "IdentitiesOnly=yes",
    "IdentityAgent=none",
    "PubkeyAuthentication=yes",
    "PasswordAuthentication=no",
    "KbdInteractiveAuthentication=no",
    "Compression=no",
    "LogLevel=ERROR",
    f"ServerAliveInterval={KEEPALIVE_SECONDS}",
    "ServerAliveCountMax=4",
    "ConnectTimeout=30",
)
_MASTER_COMMAND = f"echo {READY.decode()} && exec cat > /dev/null"

_Key = tuple[str, int, str | None, str, str]
_channels: dict[_Key, OpenSshChannel | None] = {}
_lock = threading.Lock()


def channel_for(url: SshUrl, access: SshAccess, root: str) -> OpenSshChannel | None:
    """The process's OpenSSH channel to this host (started on first use, again when it ended); None
    where SFTP carries the bytes (see the module documentation)."""
    identity = access.identity_file
    if SSH is None or access.data_channel == "sftp" or access.bandwidth_limit or identity is None:
        return None
    if not Path(identity).is_file():
        return None
    key = (url.host, url.port, url.user, access.host_key, identity)
    with _lock:  # one start at a time: a few per run
        if key in _channels:
            channel = _channels[key]
            if channel is None or channel.alive:
                return channel
            channel.close()
        channel = OpenSshChannel(url, access, identity)
        _channels[key] = channel if channel.open(root) else None
        return _channels[key]


def close_channels() -> None:
    """End every OpenSSH channel of this process (also when it exits: their folders go with them)."""
    with _lock:
        channels = [c for c in _channels.values() if c is not None]
        _channels.clear()
    for channel in channels:
        channel.close()


atexit.register(close_channels)
