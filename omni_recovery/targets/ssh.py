"""SSH target roots: a node or storage pool on another machine, written over SFTP (asyncssh).

`SshRoot` is a `TargetRoot` for `ssh://user@host[:port]/path` (or `sftp://`) with the same
guarantees: paths checked, no writing through a symlink on the way, each file written under its
`.{name}.omni-partial` name, its mode and mtime set, fsynced (`fsync@openssh.com`, where offered)
and renamed into place (`posix-rename@openssh.com`) only once whole and verified *on the target*:
the server's own SHA-256 (openssl or sha256sum) of the temporary file where the account may run
a command, else the file read back, must equal the digest of the bytes sent. Free space comes from
`statvfs@openssh.com`. Unlike a local root, a temporary file is not locked (SFTP has no locks):
the run lock keeps two recoveries from one target. Owners are set by SFTP setstat (lsetstat for a
symlink), by the host's own names where `getent` may run there; hard links by `hardlink@openssh.com`.

Trust: the host must prove the inventory's pinned `host_key` before anything is sent (no trust on
first use); authentication is by key only (the SSH agent, the inventory's `identity_file` or
`--ssh-identity`). One connection per host and key serves every root on it, with CHANNELS SFTP
sessions that files take in turn; each file keeps up to IN_FLIGHT writes outstanding (asyncssh
splits each into parallel requests). A `bandwidth_limit` paces one host's writes.

What can go wrong: a wrong host key, a refused key, a refused or dropped connection, a full disk,
a denied permission, a missing root folder: each a TargetError naming the root and the path.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import math
import os
import posixpath
import re
import shlex
import stat
import threading
import warnings
import zlib
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

with warnings.catch_warnings():  # asyncssh still imports cryptography's DSA, which warns on import
    warnings.simplefilter("ignore")
    import asyncssh
    from asyncssh.public_key import load_default_keypairs

from omni_recovery.operator_identity import note_ssh_key
from omni_recovery.targets.driver import (
    PARTIAL_SUFFIX,
    FreeSpace,
    PartialFile,
    TargetEntry,
    TargetError,
    TargetRoot,
    check_symlink_target,
    partial_relpath,
)
from omni_recovery.urls import SSH_SCHEMES, is_ssh_url

__all__ = ["SSH_SCHEMES", "SshAccess", "SshRoot", "SshUrl", "is_ssh_url"]

CHANNELS = 4  # SFTP sessions per connection
IN_FLIGHT = 8  # writes of one file outstanding at once
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


def _submit(coro: Coroutine[Any, Any, T]) -> Future[T]:
    return asyncio.run_coroutine_threadsafe(coro, _event_loop())


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return _submit(coro).result()


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


class _Session:
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
            self.accounts = Accounts(await self._names("passwd"), await self._names("group"))
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
_sessions: dict[_Key, _Session] = {}
_connecting: dict[_Key, threading.Lock] = {}


async def _open_session(url: SshUrl, access: SshAccess, root: str) -> _Session:
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
            f"the host {url.address} did not prove the inventory's host_key: expected "
            f"{pinned.get_fingerprint()}, the host offered {offered}; nothing was sent",
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
        raise TargetError(f"cannot connect to {url.address}: {_reason(exc)}", root=root) from exc
    finally:
        if agent is not None:
            agent.close()
    if client.tried is not None:
        note_ssh_key(url.address, key_fingerprint(client.tried))
    try:
        channels = [await conn.start_sftp_client() for _ in range(CHANNELS)]
    except (OSError, asyncssh.Error) as exc:
        conn.close()
        raise TargetError(f"{url.address} offers no SFTP: {_reason(exc)}", root=root) from exc
    session = _Session(conn, channels)
    if access.bandwidth_limit:
        session.pace = _Pace(access.bandwidth_limit)
    return session


def _session(url: SshUrl, access: SshAccess, root: str) -> _Session:
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
            session = _run(_open_session(url, access, root))
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
            _run(_close(session.conn))  # on the loop's thread: asyncio's objects are not thread-safe


async def _close(conn: asyncssh.SSHClientConnection) -> None:
    conn.close()
    await conn.wait_closed()


def _reason(exc: BaseException) -> str:
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


async def _digest_on_target(
    session: _Session, handle: asyncssh.SFTPClientFile, path: str, size: int
) -> tuple[str, int]:
    """SHA-256 and size of what the target holds at `path` (open as `handle`, about `size` bytes): its
    own sha256sum for a big file (where the account may run it), else the file read back."""
    if size >= REMOTE_HASH_MIN:
        digest = await session.remote_sha256(path)
        if digest is not None:
            return digest, int((await handle.stat()).size or 0)
    return await _read_digest(handle, size)


async def _read_digest(handle: asyncssh.SFTPClientFile, expected: int) -> tuple[str, int]:
    """SHA-256 and size of an open remote file, read from its start: no more than `expected` bytes
    and one are asked for at a time (asyncssh sends a read of N bytes as parallel requests)."""
    hasher, size = hashlib.sha256(), 0
    while True:
        ask = min(READ_BLOCK, max(expected - size, 0) + 1)
        block = _binary(await handle.read(ask, size))
        hasher.update(block)
        size += len(block)
        if len(block) < ask:  # a short read is the end of the file
            return hasher.hexdigest(), size


def _binary(data: bytes | str) -> bytes:
    assert isinstance(data, bytes)  # files are opened in binary mode
    return data


def _mode_of(attrs: asyncssh.SFTPAttrs) -> int:
    return int(attrs.permissions or 0)


# -- the root ------------------------------------------------------------------------------------


class SshRoot(TargetRoot):
    """A node's or storage pool's root on another machine; see the module documentation."""

    def __init__(self, url: str, access: SshAccess, *, fsync: bool = True, create: bool = True) -> None:
        self.url = url
        self.fsync = fsync
        self.fs = None
        self.is_local = False
        self.access = access
        self.target = SshUrl.parse(url)
        self.root = self.target.path
        self._checked: set[str] = set()
        _ = self.session  # connect now: a wrong host key or login fails here, before any step
        if create:
            self._call(self._create_root(), "cannot create the target root")

    def __repr__(self) -> str:
        return f"SshRoot({self.url!r})"

    @property
    def session(self) -> _Session:
        """The connection to the host: the process's, made again when it dropped (a retry reconnects)."""
        return _session(self.target, self.access, self.url)

    async def _create_root(self) -> None:
        """Make the root folder if its parent exists; a missing parent is most likely a typo."""
        sftp = self.session.sftp
        if not await sftp.isdir(self.root):
            parent = posixpath.dirname(self.root)
            if not await sftp.isdir(parent):
                raise TargetError(
                    f"the folder {parent} does not exist on {self.target.address}: create it, or "
                    "correct the root in the inventory",
                    root=self.url,
                )
            await sftp.mkdir(self.root)

    def _call(self, coro: Coroutine[Any, Any, T], doing: str, path: str | None = None) -> T:
        """Run `coro` on the SSH loop; an SSH or SFTP failure becomes a TargetError naming root and path."""
        try:
            _ = self.session  # from this thread: connects again if the connection dropped
            return _run(coro)
        except (OSError, asyncssh.Error) as exc:
            raise self.error(f"{doing}: {_reason(exc)}", path) from exc
        finally:
            coro.close()  # never started when connecting failed

    @property
    def supports_symlinks(self) -> bool:
        return True

    @property
    def guards_links(self) -> bool:
        return True

    def full(self, relpath: str) -> str:
        return posixpath.join(self.root, relpath) if relpath else self.root

    def _lstat_mode(self, relpath: str) -> int | None:
        attrs = self._call(self._lstat(self.full(relpath)), "cannot inspect", relpath)
        return None if attrs is None else _mode_of(attrs)

    async def _lstat(self, full: str) -> asyncssh.SFTPAttrs | None:
        try:
            return await self.session.sftp.lstat(full)
        except asyncssh.SFTPNoSuchFile:
            return None

    # -- writing -------------------------------------------------------------------------------

    def begin(self, relpath: str) -> PartialFile:
        return SshPartialFile(self, relpath)

    def makedirs(self, relpath: str, mode: int | None = None) -> None:
        if mode is None and relpath in self._checked:
            return
        full = self.resolve(relpath)
        if self._call(self._mkdirs(full), "cannot create folder", relpath):
            self._checked.add(relpath)  # made just now: a real folder, its parents checked by resolve()
        else:
            self._check_no_symlink_on_the_way(relpath)
        if mode is not None:
            self.chmod(relpath, mode)

    async def _mkdirs(self, full: str) -> bool:
        """Make the folder `full` and any parents missing (one request when its parent is there, as a
        restore's folders in order are); True when `full` itself was made, False when it was there."""
        sftp = self.session.sftp
        try:
            await sftp.mkdir(full)
        except asyncssh.SFTPNoSuchFile:
            await self._mkdirs(posixpath.dirname(full))
            await sftp.mkdir(full)
        except asyncssh.SFTPError:
            if await self._lstat(full) is None:
                raise
            return False
        return True

    def symlink(self, relpath: str, target: str) -> None:
        check_symlink_target(relpath, target)
        full = self.resolve(relpath)
        if parent := posixpath.dirname(relpath):
            self.makedirs(parent)
        temp = self.resolve(partial_relpath(relpath))
        self._call(self._symlink(full, temp, target), "cannot create symlink", relpath)

    async def _symlink(self, full: str, temp: str, target: str) -> None:
        sftp = self.session.sftp
        attrs = await self._lstat(full)
        if attrs is not None and stat.S_ISLNK(_mode_of(attrs)) and await sftp.readlink(full) == target:
            return
        with contextlib.suppress(asyncssh.SFTPNoSuchFile):
            await sftp.remove(temp)
        await sftp.symlink(target, temp)
        await sftp.posix_rename(temp, full)

    def hardlink(self, relpath: str, existing: str) -> None:
        """Make `relpath` another name of `existing` (`hardlink@openssh.com`), replacing what is there."""
        full, source = self.resolve(relpath), self.resolve(existing)
        temp = self.resolve(partial_relpath(relpath))
        self._call(self._hardlink(full, temp, source), f"cannot make it a hard link to {existing}", relpath)

    async def _hardlink(self, full: str, temp: str, source: str) -> None:
        sftp = self.session.sftp
        with contextlib.suppress(asyncssh.SFTPNoSuchFile):
            await sftp.remove(temp)
        await sftp.link(source, temp)
        await sftp.posix_rename(temp, full)
        with contextlib.suppress(asyncssh.SFTPNoSuchFile):  # left where `full` was already that file
            await sftp.remove(temp)

    def accounts(self) -> Accounts:
        """The target host's user and group names (looked up once per connection)."""
        return self._call(self.session.lookup_accounts(), "cannot look up the target's accounts")

    def lchown(self, relpath: str, uid: int, gid: int) -> str | None:
        """Give `relpath` (a symlink itself, not what it points to) the owner uid:gid, -1 keeping one
        as it is; the server's reason where it refuses (not root, no lsetstat@openssh.com), else None."""
        full = self.resolve(relpath)
        return self._call(self._lchown(full, uid, gid), "cannot change owner", relpath)

    async def _lchown(self, full: str, uid: int, gid: int) -> str | None:
        sftp = self.session.sftp
        if -1 in (uid, gid):  # SFTP sets both or neither
            attrs = await sftp.lstat(full)
            uid = attrs.uid if uid == -1 and attrs.uid is not None else uid
            gid = attrs.gid if gid == -1 and attrs.gid is not None else gid
        try:
            await sftp.chown(full, uid=uid, gid=gid, follow_symlinks=False)
        except (asyncssh.SFTPPermissionDenied, asyncssh.SFTPOpUnsupported, asyncssh.SFTPFailure) as exc:
            return _reason(exc)
        return None

    def chmod(self, relpath: str, mode: int) -> None:
        full = self.resolve(relpath)
        self._call(self._chmod(full, stat.S_IMODE(mode)), "cannot change mode", relpath)

    async def _chmod(self, full: str, mode: int) -> None:
        attrs = await self.session.sftp.lstat(full)
        if not stat.S_ISLNK(_mode_of(attrs)):
            await self.session.sftp.chmod(full, mode)

    def set_mtime(self, relpath: str, mtime: float) -> None:
        full = self.resolve(relpath)
        self._call(self._set_mtime(full, mtime), "cannot set mtime", relpath)

    async def _set_mtime(self, full: str, mtime: float) -> None:
        # A server without lsetstat@openssh.com cannot date a symlink itself.
        with contextlib.suppress(asyncssh.SFTPOpUnsupported):
            await self.session.sftp.utime(full, (mtime, mtime), follow_symlinks=False)

    def discard(self, relpath: str) -> bool:
        full = self.resolve(relpath)
        return self._call(self._discard(full), "cannot remove", relpath)

    async def _discard(self, full: str) -> bool:
        try:
            await self.session.sftp.remove(full)
        except asyncssh.SFTPNoSuchFile:
            return False
        return True

    def fsync_folder(self, relpath: str) -> None:
        """SFTP cannot fsync a folder: each file is fsynced before its rename instead."""

    # -- reading -------------------------------------------------------------------------------

    def free_space(self) -> FreeSpace | None:
        return self._call(self._free_space(), "cannot tell the free space")

    async def _free_space(self) -> FreeSpace | None:
        folder = self.root
        sftp = self.session.sftp
        while not await sftp.isdir(folder) and folder != "/":
            folder = posixpath.dirname(folder)
        try:
            vfs = await sftp.statvfs(folder)
        except asyncssh.SFTPOpUnsupported:
            return None
        # A device number of its own per host and filesystem (negative: never a local st_dev).
        device = -1 - zlib.crc32(f"{self.target.host}:{self.target.port}:{vfs.fsid}".encode())
        return FreeSpace(device, vfs.bavail * vfs.frsize)

    def exists(self, relpath: str) -> bool:
        return self.kind(relpath) is not None

    def kind(self, relpath: str) -> str | None:
        self.resolve(relpath)
        mode = self._lstat_mode(relpath)
        if mode is None:
            return None
        return "symlink" if stat.S_ISLNK(mode) else "dir" if stat.S_ISDIR(mode) else "file"

    def size(self, relpath: str) -> int | None:
        full = self.resolve(relpath)
        attrs = self._call(self._lstat(full), "cannot inspect", relpath)
        if attrs is None or not stat.S_ISREG(_mode_of(attrs)):
            return None
        return int(attrs.size or 0)

    def read_bytes(self, relpath: str) -> bytes:
        full = self.resolve(relpath)
        return self._call(self._read_all(full), "cannot read", relpath)

    async def _read_all(self, full: str) -> bytes:
        async with self.session.sftp.open(full, "rb") as fh:
            return _binary(await fh.read())

    def sha256(self, relpath: str) -> tuple[str, int]:
        full = self.resolve(relpath)
        return self._call(self._hash(full), "cannot read", relpath)

    async def _hash(self, full: str) -> tuple[str, int]:
        async with self.session.sftp.open(full, "rb") as fh:
            return await _digest_on_target(self.session, fh, full, int((await fh.stat()).size or 0))

    def listing(self, under: str = "") -> dict[str, TargetEntry]:
        base = self.resolve(under) if under else self.root
        return self._call(self._listing(base), "cannot list", under or None)

    async def _listing(self, base: str) -> dict[str, TargetEntry]:
        out: dict[str, TargetEntry] = {}
        if await self._lstat(base) is None:
            return out
        async for full, attrs in self._walk(base):
            rel = full[len(self.root) :].lstrip("/")
            mode = _mode_of(attrs)
            if stat.S_ISLNK(mode):
                out[rel] = TargetEntry(rel, "symlink", 0, mode, await self.session.sftp.readlink(full))
            elif stat.S_ISDIR(mode):
                out[rel] = TargetEntry(rel, "dir", 0, mode)
            else:
                out[rel] = TargetEntry(rel, "file", int(attrs.size or 0), mode)
        return out

    async def _walk(self, folder: str) -> AsyncIterator[tuple[str, asyncssh.SFTPAttrs]]:
        """Every entry under `folder` with its attributes (symlinks not followed), folders first."""
        async for entry in self.session.sftp.scandir(folder):
            name = str(entry.filename)
            if name in (".", ".."):
                continue
            full = posixpath.join(folder, name)
            yield full, entry.attrs
            if stat.S_ISDIR(_mode_of(entry.attrs)):
                async for inner in self._walk(full):
                    yield inner

    def remove_partials(self, under: str = "") -> list[str]:
        base = self.resolve(under) if under else self.root
        return self._call(self._remove_partials(base), "cannot sweep temporary files", under or None)

    async def _remove_partials(self, base: str) -> list[str]:
        if await self._lstat(base) is None:
            return []
        found = [
            full
            async for full, attrs in self._walk(base)
            if posixpath.basename(full).startswith(".")
            and full.endswith(PARTIAL_SUFFIX)
            and not stat.S_ISDIR(_mode_of(attrs))
        ]
        for full in found:
            await self.session.sftp.remove(full)
        return sorted(full[len(self.root) :].lstrip("/") for full in found)


class SshPartialFile(PartialFile):
    """A file written over SFTP under its temporary name, verified on the target before its rename."""

    root: SshRoot

    def _open(self) -> None:
        self.sftp = self.root.session.channel()
        self.digest = hashlib.sha256()
        self.in_flight: deque[Future[None]] = deque()
        self.handle: asyncssh.SFTPClientFile | None = self.root._call(
            self._create(), "cannot create the temporary file", self.partial
        )

    async def _create(self) -> asyncssh.SFTPClientFile:
        return await self.sftp.open(self._partial_full, "w+b")  # read back before it is closed

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Send `data` after what was written; up to IN_FLIGHT writes are outstanding at once."""
        payload = bytes(data)  # the caller reuses its buffer as soon as this returns
        self.digest.update(payload)
        self.in_flight.append(_submit(self._write_at(payload, self.size)))
        self.size += len(payload)
        while len(self.in_flight) > IN_FLIGHT:
            self._wait(self.in_flight.popleft())
        return len(payload)

    async def _write_at(self, payload: bytes, offset: int) -> None:
        assert self.handle is not None
        if self.root.session.pace is not None:
            await self.root.session.pace.take(len(payload))
        await self.handle.write(payload, offset)

    def _wait(self, write: Future[None]) -> None:
        try:
            write.result()
        except (OSError, asyncssh.Error) as exc:
            raise self.root.error(f"write failed: {_reason(exc)}", self.partial) from exc

    def commit(
        self, *, mode: int | None = None, mtime: float | None = None, sync_folder: bool = True
    ) -> None:
        """Wait for the writes, set mode and mtime, fsync, check the target's digest, rename into place."""
        try:
            while self.in_flight:
                self._wait(self.in_flight.popleft())
            self.root._call(self._finish(mode, mtime), "cannot put the file in place", self.relpath)
        except BaseException:
            self.abort()
            raise
        self._done = True

    async def _finish(self, mode: int | None, mtime: float | None) -> None:
        """Set mode and mtime, fsync and read back (sent at once: the server answers in order, so one
        round trip), check, then close and rename (at once again)."""
        handle, self.handle = self.handle, None
        assert handle is not None
        try:
            *_, (landed, size) = await asyncio.gather(
                self._set_attrs(handle, mode, mtime),
                self._fsync(handle),
                _digest_on_target(self.root.session, handle, self._partial_full, self.size),
            )
        except BaseException:
            await handle.close()
            raise
        if (landed, size) != (self.digest.hexdigest(), self.size):
            await handle.close()
            raise TargetError(
                f"the bytes on the target differ from those sent (sha256 {landed}, {size} bytes on the "
                f"target; {self.digest.hexdigest()}, {self.size} bytes sent): nothing was put in place",
                root=self.root.url,
                path=self.relpath,
            )
        await asyncio.gather(handle.close(), self.sftp.posix_rename(self._partial_full, self._full))

    @staticmethod
    async def _set_attrs(handle: asyncssh.SFTPClientFile, mode: int | None, mtime: float | None) -> None:
        if mode is not None or mtime is not None:
            when = None if mtime is None else math.floor(mtime)  # SFTP v3 dates in whole seconds
            permissions = None if mode is None else stat.S_IMODE(mode)
            await handle.setstat(asyncssh.SFTPAttrs(permissions=permissions, atime=when, mtime=when))

    async def _fsync(self, handle: asyncssh.SFTPClientFile) -> None:
        if self.root.fsync:
            with contextlib.suppress(asyncssh.SFTPOpUnsupported):  # a server without fsync@openssh.com
                await handle.fsync()

    def abort(self) -> None:
        """Let the outstanding writes end, then close and remove the temporary file."""
        if self._done:
            return
        self._done = True
        for write in self.in_flight:
            with contextlib.suppress(Exception):
                write.result()
        self.in_flight.clear()
        handle, self.handle = self.handle, None
        with contextlib.suppress(OSError, asyncssh.Error):
            if handle is not None:
                _run(handle.close())
            _run(self.root._discard(self._partial_full))
