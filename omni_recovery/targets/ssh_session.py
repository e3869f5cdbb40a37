"""SSH connections for the SSH target roots: one per host and key, on one event loop per process.

`session_for(url, access, root)` returns the process's connection to a host (made, or made again when
it dropped, on demand): the host must prove the inventory's pinned `host_key` before anything is sent
(no trust on first use), and authentication is by key only (the SSH agent, the inventory's
`identity_file` or `--ssh-identity`); the fingerprint of the key the host accepted is noted for the
audit rows. A `Session` holds CHANNELS SFTP sessions that files take in turn, a `bandwidth_limit`
pace, and what the server was found to offer (a command to hash a file on the target, `getent`).
asyncssh runs on its own thread: `run_on_loop` and `submit` hand it coroutines from any other.

What can go wrong: a wrong host key (the message shows the expected and offered fingerprints), a
refused key, a refused or dropped connection: each a TargetError naming the root; `reason` words an
SFTP failure (no such file, permission denied, disk full, connection dropped) for the caller's message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import posixpath
import re
import shlex
import threading
import warnings
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

with warnings.catch_warnings():  # asyncssh still imports cryptography's DSA, which warns on import
    warnings.simplefilter("ignore")
    import asyncssh
    from asyncssh.public_key import load_default_keypairs

from omni_recovery.operator_identity import note_ssh_key
from omni_recovery.targets.base import TargetError
from omni_recovery.urls import SSH_SCHEMES

CHANNELS = 4  # SFTP sessions per connection
READ_BLOCK = 4 << 20
# From this size on a file is hashed by the target's sha256sum (where allowed), not read back: a
# command costs a session on the server (a fork and a login shell), a small file's bytes less.
REMOTE_HASH_MIN = 8 << 20
# AES-GCM first: the CPU does AES itself, where asyncssh's ChaCha20 (its default) costs several times more.
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes256-ctr")
KEEPALIVE_SECONDS = 15  # a silent network drop ends the connection after 4 unanswered keepalives
# How the target hashes a file itself: OpenSSL first (it uses the CPU's SHA instructions, several
# times faster than coreutils' sha256sum here), then sha256sum.
HASH_COMMANDS = ("openssl dgst -sha256 -r {path}", "sha256sum -- {path}")
_DIGEST = re.compile(r"\\?([0-9a-f]{64}) ")
T = TypeVar("T")


@dataclass(frozen=True)
class SshAccess:
    """How to reach one SSH root: the host key it must prove, the key to log in with, its pace."""

    host_key: str  # a known_hosts public key: "ssh-ed25519 AAAA…"
    identity_file: str | None = None  # else the SSH agent (and ~/.ssh's default keys)
    bandwidth_limit: int | None = None  # bytes per second written to this host, None for no limit
    data_channel: str = "auto"  # big files by OpenSSH's ssh where it can (ssh_stream); "sftp"; "openssh"


@dataclass(frozen=True)
class SshUrl:
    user: str | None
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> SshUrl:
        parts = urlsplit(url)
        if parts.scheme not in SSH_SCHEMES or not parts.hostname:
            raise TargetError("not an ssh://user@host[:port]/path URL", root=url)
        try:
            port = parts.port or 22
        except ValueError as exc:
            raise TargetError(f"bad port: {exc}", root=url) from exc
        path = posixpath.normpath("/" + unquote(parts.path).lstrip("/"))
        return cls(unquote(parts.username) if parts.username else None, parts.hostname, port, path)

    @property
    def address(self) -> str:
        who = f"{self.user}@" if self.user else ""
        return f"{who}{self.host}:{self.port}"


# -- one event loop for every connection of this process ------------------------------------------

LOOP_THREAD = "omni-ssh"
_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _event_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None:
            # asyncio says so for each write asyncssh still tries on a connection that dropped; the
            # dropped connection itself is reported, once, by the operation it broke.
            logging.getLogger("asyncio").addFilter(lambda record: "socket.send()" not in record.getMessage())
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name=LOOP_THREAD, daemon=True).start()
        return _loop


def submit(coro: Coroutine[Any, Any, T]) -> Future[T]:
    return asyncio.run_coroutine_threadsafe(coro, _event_loop())


def run_on_loop(coro: Coroutine[Any, Any, T]) -> T:
    return submit(coro).result()


# -- connections ----------------------------------------------------------------------------------


class _PinnedHost(asyncssh.SSHClient):
    """Remembers the host key a server offered that is not the pinned one (for the message), and
    offers the client keys one at a time: once logged in, the last one offered is the one accepted."""

    def __init__(self, keys: list[asyncssh.SSHKeyPair]) -> None:
        self.keys = keys
        self.offered: asyncssh.SSHKey | None = None
        self.tried: asyncssh.SSHKeyPair | None = None

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.offered = key
        return False

    def public_key_auth_requested(self) -> list[asyncssh.SSHKeyPair] | None:
        self.tried = self.keys.pop(0) if self.keys else None
        return None if self.tried is None else [self.tried]


async def _client_keys(access: SshAccess) -> tuple[list[asyncssh.SSHKeyPair], asyncssh.SSHAgentClient | None]:
    """The keys to log in with, in the order ssh tries them: the SSH agent's, then the identity file
    (else ~/.ssh's default keys); and the agent's connection, to close once logged in."""
    keys: list[asyncssh.SSHKeyPair] = []
    agent = None
    if os.environ.get("SSH_AUTH_SOCK"):
        try:
            agent = await asyncssh.connect_agent()
            keys += await agent.get_keys()
        except (OSError, ValueError, asyncssh.Error):
            agent = None  # a stale socket: go on with the files
    if access.identity_file:
        keys += asyncssh.load_keypairs([access.identity_file])
    else:
        keys += load_default_keypairs()
    return keys, agent


def key_fingerprint(key: asyncssh.SSHKeyPair) -> str:
    """OpenSSH's SHA256 fingerprint of a key pair's public key (as `ssh-keygen -l` prints it)."""
    digest = hashlib.sha256(key.key_public_data).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


class _Pace:
    """Spaces one host's writes so that they average at most `rate` bytes per second."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.next_free = 0.0

    async def take(self, amount: int) -> None:
        now = asyncio.get_running_loop().time()
        start = max(now, self.next_free)
        self.next_free = start + amount / self.rate
        await asyncio.sleep(start - now)


class Session:
    """One SSH connection to a host, its SFTP sessions, and what the server was found to offer."""

    def __init__(self, conn: asyncssh.SSHClientConnection, channels: list[asyncssh.SFTPClient]) -> None:
        self.conn = conn
        self.channels = channels
        self.turn = 0
        self.hash_commands = list(HASH_COMMANDS)  # those not found wanting yet
        self.can_hash = False  # whether the target has hashed a file itself
        self.pace: _Pace | None = None
        self.accounts: Accounts | None = None  # the target's user and group names, once looked up

    def channel(self) -> asyncssh.SFTPClient:
        self.turn = (self.turn + 1) % len(self.channels)
        return self.channels[self.turn]

    @property
    def sftp(self) -> asyncssh.SFTPClient:
        return self.channels[0]

    async def remote_sha256(self, path: str) -> str | None:
        """The target's own SHA-256 of `path`, by the first of HASH_COMMANDS that works there; None
        when the account may run none of them (a command that fails is not tried again)."""
        while self.hash_commands:
            try:
                result = await self.conn.run(
                    self.hash_commands[0].format(path=shlex.quote(path)), check=False
                )
            except (asyncssh.ChannelOpenError, asyncssh.ProcessError):
                self.hash_commands.clear()  # no command at all for this account
                return None
            found = _DIGEST.match(str(result.stdout or ""))
            if result.exit_status == 0 and found is not None:
                self.can_hash = True
                return found.group(1)
            self.hash_commands.pop(0)
        return None

    async def lookup_accounts(self) -> Accounts:
        """The target's user and group names with their ids, by one `getent passwd` and one `getent
        group`; empty where the account may not run them (the owners then go by number)."""
        if self.accounts is None:
            self.accounts = Accounts(*await asyncio.gather(self._names("passwd"), self._names("group")))
        return self.accounts

    async def _names(self, database: str) -> dict[str, int]:
        try:
            result = await self.conn.run(f"getent {database}", check=False)
        except (asyncssh.ChannelOpenError, asyncssh.ProcessError):
            return {}
        if result.exit_status != 0:
            return {}
        fields = (line.split(":") for line in str(result.stdout or "").splitlines())
        return {f[0]: int(f[2]) for f in fields if len(f) > 2 and f[2].isdigit()}


@dataclass(frozen=True)
class Accounts:
    """User and group names of a target host and their ids."""

    users: dict[str, int]
    groups: dict[str, int]


_Key = tuple[str, int, str | None, str, str | None]
_sessions: dict[_Key, Session] = {}
_connecting: dict[_Key, threading.Lock] = {}


async def _open_session(url: SshUrl, access: SshAccess, root: str) -> Session:
    try:
        pinned = asyncssh.import_public_key(access.host_key)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise TargetError(f"the inventory's host_key is not a public key: {exc}", root=root) from exc
    agent = None
    try:
        keys, agent = await _client_keys(access)
        client = _PinnedHost(keys)
        conn, _ = await asyncssh.create_connection(
            lambda: client,
            url.host,
            url.port,
            username=url.user,
            known_hosts=([pinned], [], []),
            client_keys=None,  # offered by _PinnedHost, which so knows the one accepted
            agent_path=None,
            password=None,
            passphrase=None,
            preferred_auth="publickey",
            config=[],
            encryption_algs=CIPHERS,
            keepalive_interval=KEEPALIVE_SECONDS,
            keepalive_count_max=4,
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        offered = client.offered.get_fingerprint() if client.offered else "a key of another type"
        raise TargetError(
            f"the host {url.address} did not prove the pinned host key (the inventory's host_key, or "
            f"--ssh-host-key): expected {pinned.get_fingerprint()}, the host offered {offered}; "
            "nothing was sent",
            root=root,
        ) from exc
    except asyncssh.PermissionDenied as exc:
        raise TargetError(
            f"{url.address} refused the key (key authentication only: the SSH agent, the inventory's "
            f"identity_file or --ssh-identity): {exc.reason}",
            root=root,
        ) from exc
    except asyncssh.KeyImportError as exc:
        raise TargetError(
            f"cannot use the identity file {access.identity_file}: {exc} (an encrypted key goes in the "
            "SSH agent)",
            root=root,
        ) from exc
    except (OSError, asyncssh.Error) as exc:
        raise TargetError(f"cannot connect to {url.address}: {reason(exc)}", root=root) from exc
    finally:
        if agent is not None:
            agent.close()
    if client.tried is not None:
        note_ssh_key(url.address, key_fingerprint(client.tried))
    try:
        channels = [await conn.start_sftp_client() for _ in range(CHANNELS)]
    except (OSError, asyncssh.Error) as exc:
        conn.close()
        raise TargetError(f"{url.address} offers no SFTP: {reason(exc)}", root=root) from exc
    session = Session(conn, channels)
    if access.bandwidth_limit:
        session.pace = _Pace(access.bandwidth_limit)
    return session


def session_for(url: SshUrl, access: SshAccess, root: str) -> Session:
    """The process's connection for this host and key, made (or made again, if it dropped) on demand,
    by one thread at a time."""
    key = (url.host, url.port, url.user, access.host_key, access.identity_file)
    with _loop_lock:
        session = _sessions.get(key)
        connecting = _connecting.setdefault(key, threading.Lock())
    # On the loop's own thread (inside an operation) a dropped connection is not made again: the
    # operation fails, and the next one, from its caller's thread, connects anew.
    if session is not None and (
        not session.conn.is_closed() or threading.current_thread().name == LOOP_THREAD
    ):
        return session
    with connecting:
        with _loop_lock:
            session = _sessions.get(key)
        if session is None or session.conn.is_closed():
            session = run_on_loop(_open_session(url, access, root))
            with _loop_lock:
                _sessions[key] = session
    return session


def close_sessions() -> None:
    """Close every SSH connection of this process (a process that ends just drops them)."""
    with _loop_lock:
        sessions = list(_sessions.values())
        _sessions.clear()
    for session in sessions:
        with contextlib.suppress(Exception):
            run_on_loop(_close(session.conn))  # on the loop's thread: asyncio's objects are not thread-safe


async def _close(conn: asyncssh.SSHClientConnection) -> None:
    conn.close()
    await conn.wait_closed()


def reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (no SSH server listens on that port)"
    if isinstance(exc, asyncssh.SFTPNoSuchFile):
        return "no such file or folder"
    if isinstance(exc, asyncssh.SFTPPermissionDenied):
        return "permission denied"
    if isinstance(exc, asyncssh.SFTPNoSpaceOnFilesystem):
        return "no space left on the target's disk"
    if isinstance(
        exc,
        asyncssh.SFTPConnectionLost | asyncssh.SFTPNoConnection | asyncssh.ConnectionLost | BrokenPipeError,
    ):
        return "the connection dropped"
    if isinstance(exc, asyncssh.SFTPError | asyncssh.DisconnectError):
        return exc.reason or type(exc).__name__
    return str(exc) or type(exc).__name__


async def digest_on_target(
    session: Session, handle: asyncssh.SFTPClientFile, path: str, size: int
) -> tuple[str, int]:
    """SHA-256 and size of what the target holds at `path` (open as `handle`, about `size` bytes): its
    own sha256sum for a big file (where the account may run it), else the file read back."""
    if size >= REMOTE_HASH_MIN:
        digest = await session.remote_sha256(path)
        if digest is not None:
            return digest, int((await handle.stat()).size or 0)
    return await read_digest(handle, size)


async def read_digest(handle: asyncssh.SFTPClientFile, expected: int) -> tuple[str, int]:
    """SHA-256 and size of an open remote file, read from its start: no more than `expected` bytes
    and one are asked for at a time (asyncssh sends a read of N bytes as parallel requests)."""
    hasher, size = hashlib.sha256(), 0
    while True:
        ask = min(READ_BLOCK, max(expected - size, 0) + 1)
        block = as_bytes(await handle.read(ask, size))
        hasher.update(block)
        size += len(block)
        if len(block) < ask:  # a short read is the end of the file
            return hasher.hexdigest(), size


def as_bytes(data: bytes | str) -> bytes:
    assert isinstance(data, bytes)  # files are opened in binary mode
    return data


def mode_of(attrs: asyncssh.SFTPAttrs) -> int:
    return int(attrs.permissions or 0)
