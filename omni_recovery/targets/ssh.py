"""SSH target roots: a node or storage pool on another machine, written over SFTP (asyncssh).

`SshRoot` is a `TargetRoot` for `ssh://user@host[:port]/path` (or `sftp://`) with the same
guarantees: paths checked, no writing through a symlink on the way, each file written under its
`.{name}.omni-partial` name (`ssh_partial.SshPartialFile`), its mode and mtime set, fsynced
(`fsync@openssh.com`, where offered) and renamed into place (`posix-rename@openssh.com`) only once
whole and verified *on the target*. Free space comes from `statvfs@openssh.com`. Unlike a local
root, a temporary file is not locked (SFTP has no locks): the run lock keeps two recoveries from one
target. Owners are set by SFTP setstat (lsetstat for a symlink), by the host's own names where
`getent` may run there; hard links by `hardlink@openssh.com`. The connection, its trust rules and
its channels are `ssh_session`'s; big files' bytes go by OpenSSH's `ssh` where it can (`ssh_stream`).

What can go wrong: a wrong host key, a refused key, a refused or dropped connection, a full disk,
a denied permission, a missing root folder: each a TargetError naming the root and the path.
"""

from __future__ import annotations

import contextlib
import posixpath
import stat
import zlib
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from omni_recovery.targets import ssh_session
from omni_recovery.targets.base import (
    PARTIAL_SUFFIX,
    FreeSpace,
    TargetEntry,
    TargetError,
    check_symlink_target,
    partial_relpath,
)
from omni_recovery.targets.driver import TargetRoot
from omni_recovery.targets.partial import PartialFile
from omni_recovery.targets.ssh_partial import SshPartialFile, StreamedPartialFile
from omni_recovery.targets.ssh_session import (  # asyncssh imported there, without its warning
    REMOTE_HASH_MIN,
    Accounts,
    Session,
    SshAccess,
    SshUrl,
    as_bytes,
    asyncssh,
    digest_on_target,
    mode_of,
    reason,
    run_on_loop,
    session_for,
)
from omni_recovery.targets.ssh_stream import channel_for, close_channels
from omni_recovery.urls import SSH_SCHEMES, is_ssh_url

__all__ = ["REMOTE_HASH_MIN", "SSH_SCHEMES", "SshAccess", "SshRoot", "SshUrl", "close_sessions", "is_ssh_url"]
T = TypeVar("T")
# From this size on a file's bytes go by OpenSSH's ssh where it can: starting an ssh session costs more
# than sending a smaller file over SFTP.
STREAM_MIN = 4 << 20
# A download keeps DOWNLOAD_REQUESTS reads of DOWNLOAD_BLOCK bytes in flight: 4 MiB, whatever the
# server's read limit (asyncssh's own default grows with it, to 64 MiB against its own server).
DOWNLOAD_BLOCK = 256 << 10
DOWNLOAD_REQUESTS = 16


def close_sessions() -> None:
    """Close every SSH connection of this process, asyncssh's and OpenSSH's."""
    close_channels()
    ssh_session.close_sessions()


class SshRoot(TargetRoot):
    """A node's or storage pool's root on another machine; see the module documentation."""

    threads_per_parallel = 8  # a small file waits on three round trips

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
    def session(self) -> Session:
        """The connection to the host: the process's, made again when it dropped (a retry reconnects)."""
        return session_for(self.target, self.access, self.url)

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
            return run_on_loop(coro)
        except (OSError, asyncssh.Error) as exc:
            raise self.error(f"{doing}: {reason(exc)}", path) from exc
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
        return None if attrs is None else mode_of(attrs)

    async def _lstat(self, full: str) -> asyncssh.SFTPAttrs | None:
        try:
            return await self.session.sftp.lstat(full)
        except asyncssh.SFTPNoSuchFile:
            return None

    # -- writing -------------------------------------------------------------------------------

    def begin(self, relpath: str, size: int | None = None) -> PartialFile:
        """A file of STREAM_MIN bytes or more (any size, with the access's data_channel "openssh") goes
        by OpenSSH's ssh where the host allows (ssh_stream); others over SFTP."""
        least = 0 if self.access.data_channel == "openssh" else STREAM_MIN
        if size is not None and size >= least:
            channel = channel_for(self.target, self.access, self.url)
            if channel is not None:
                return StreamedPartialFile(self, relpath, channel)
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
        try:
            return await self._mkdir(full)
        except asyncssh.SFTPNoSuchFile:
            await self._mkdirs(posixpath.dirname(full))
            return await self._mkdir(full)

    async def _mkdir(self, full: str) -> bool:
        """Make the folder `full`: True, or False when it is there (another file's thread made it)."""
        try:
            await self.session.sftp.mkdir(full)
        except asyncssh.SFTPNoSuchFile:
            raise
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
        if attrs is not None and stat.S_ISLNK(mode_of(attrs)) and await sftp.readlink(full) == target:
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
            return reason(exc)
        return None

    def chmod(self, relpath: str, mode: int) -> None:
        full = self.resolve(relpath)
        self._call(self._chmod(full, stat.S_IMODE(mode)), "cannot change mode", relpath)

    async def _chmod(self, full: str, mode: int) -> None:
        attrs = await self.session.sftp.lstat(full)
        if not stat.S_ISLNK(mode_of(attrs)):
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

    def root_exists(self) -> bool:
        return self._call(self.session.sftp.isdir(self.root), "cannot inspect the root")

    def offers_fsync(self) -> bool:
        """Whether the server fsyncs a file on request (`fsync@openssh.com`), tried on a probe file in
        the root (removed after)."""
        return self._call(
            self._offers_fsync(self.full(partial_relpath(".omni-fsync-probe"))), "cannot probe fsync"
        )

    async def _offers_fsync(self, probe: str) -> bool:
        try:
            async with self.session.sftp.open(probe, "w") as handle:
                await handle.fsync()
        except asyncssh.SFTPOpUnsupported:
            return False
        finally:
            await self._discard(probe)
        return True

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
        if attrs is None or not stat.S_ISREG(mode_of(attrs)):
            return None
        return int(attrs.size or 0)

    def read_bytes(self, relpath: str) -> bytes:
        full = self.resolve(relpath)
        return self._call(self._read_all(full), "cannot read", relpath)

    async def _read_all(self, full: str) -> bytes:
        async with self.session.sftp.open(full, "rb") as fh:
            return as_bytes(await fh.read())

    def download(self, relpath: str, destination: Path) -> None:
        """Copy the file `relpath` to the local `destination` with its mode and mtimes, by pipelined
        block reads (a few MiB in flight, never the whole file in memory); holes stay holes."""
        full = self.resolve(relpath)
        self._call(
            self.session.sftp.get(full, destination, preserve=True), f"cannot copy to {destination}", relpath
        )

    def sha256(self, relpath: str) -> tuple[str, int]:
        full = self.resolve(relpath)
        return self._call(self._hash(full), "cannot read", relpath)

    async def _hash(self, full: str) -> tuple[str, int]:
        async with self.session.sftp.open(full, "rb") as fh:
            return await digest_on_target(self.session, fh, full, int((await fh.stat()).size or 0))

    def listing(self, under: str = "") -> dict[str, TargetEntry]:
        base = self.resolve(under) if under else self.root
        return self._call(self._listing(base), "cannot list", under or None)

    async def _listing(self, base: str) -> dict[str, TargetEntry]:
        out: dict[str, TargetEntry] = {}
        if await self._lstat(base) is None:
            return out
        async for full, attrs in self._walk(base):
            rel = full[len(self.root) :].lstrip("/")
            mode = mode_of(attrs)
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
            if stat.S_ISDIR(mode_of(entry.attrs)):
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
            and not stat.S_ISDIR(mode_of(attrs))
        ]
        for full in found:
            await self.session.sftp.remove(full)
        return sorted(full[len(self.root) :].lstrip("/") for full in found)
