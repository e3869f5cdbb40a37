"""Backup sets read over SFTP: an fsspec filesystem for `ssh://` and `sftp://` URLs on a pinned host.

`allow_ssh_location(url, access)` pins a host for this process (its host key, the key to log in
with) and makes fsspec open `ssh://` and `sftp://` URLs with `PinnedSftpFileSystem`, which reaches
the host through the target driver's connection (`ssh_session`): the same rules as an SSH target
(the host proves the pinned key before anything is sent; key login only). A host not pinned is
refused, never trusted on first use. Files are read by range: each read asks the server for the
blocks that hold the bytes wanted, so an ISO's directory records and manifests are read where they
lie and the image is never downloaded whole. The blocks read are kept for every later open of the
same file (same host, path, size and mtime) in this process, SHARED_BLOCKS at most: registering reads
each ISO's records in three passes (ingest, blocking check, catalog), which so ask the host once.

What can go wrong: a host not pinned, a wrong host key or a refused login (TargetError naming the
host); a missing file (FileNotFoundError); any other SFTP failure (OSError naming the URL and why).
Writing is not offered: a set is only ever read from here.
"""

from __future__ import annotations

import contextlib
import posixpath
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import fsspec
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from omni_recovery.targets.base import TargetError
from omni_recovery.targets.ssh_session import (  # asyncssh imported there, without its warning
    SshAccess,
    SshUrl,
    as_bytes,
    asyncssh,
    mode_of,
    reason,
    run_on_loop,
    session_for,
)
from omni_recovery.urls import SSH_SCHEMES

T = TypeVar("T")
# Each range read asks for whole blocks of RANGE_BLOCK bytes, CACHED_BLOCKS of which are kept per open
# file (least recently used dropped): a reader that goes back to a directory sector does not ask again.
RANGE_BLOCK = 64 << 10
CACHED_BLOCKS = 64
SHARED_BLOCKS = 1024  # 64 MiB of blocks kept across opens, least recently used dropped
_pinned: dict[tuple[str, int, str | None], SshAccess] = {}


def allow_ssh_location(location: str, access: SshAccess) -> None:
    """Pin the host of the `ssh://` URL `location` for this process, and let fsspec read from it."""
    url = SshUrl.parse(location)
    _pinned[(url.host, url.port, url.user)] = access
    for protocol in SSH_SCHEMES:
        fsspec.register_implementation(protocol, PinnedSftpFileSystem, clobber=True)


def is_pinned(location: str) -> bool:
    """Whether the host of the `ssh://` URL `location` is pinned in this process."""
    url = SshUrl.parse(location)
    return (url.host, url.port, url.user) in _pinned


def forget_ssh_locations() -> None:
    """Unpin every host `allow_ssh_location` pinned (fsspec's cached filesystems of them too, and the
    blocks read from them)."""
    _pinned.clear()
    PinnedSftpFileSystem.clear_instance_cache()
    _shared.clear()


class _SharedBlocks:
    """Blocks read from remote files, by (file, start, end), kept across opens of the same file."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.blocks: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> bytes | None:
        with self.lock:
            found = self.blocks.get(key)
            if found is not None:
                self.blocks.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], data: bytes) -> None:
        with self.lock:
            self.blocks[key] = data
            while len(self.blocks) > self.capacity:
                self.blocks.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.blocks.clear()


_shared = _SharedBlocks(SHARED_BLOCKS)


class PinnedSftpFileSystem(AbstractFileSystem):
    """A pinned host's files, read over SFTP by range (see the module documentation)."""

    protocol = SSH_SCHEMES
    root_marker = "/"

    def __init__(self, host: str, port: int = 22, username: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = SshUrl(username, host, port, "/")
        self.location = f"ssh://{self.target.address}"
        access = _pinned.get((host, port, username))
        if access is None:
            raise TargetError(
                "no host key is pinned for this host, and an unknown host is never trusted: register the "
                "set with `register-isos --path URL --ssh-host-key KEY` (the other commands then read it "
                "from the host that proves that key)",
                root=self.location,
            )
        self.access = access

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        if "://" in path:
            return SshUrl.parse(path).path
        return posixpath.normpath("/" + path.lstrip("/"))

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        url = SshUrl.parse(path)
        return {"host": url.host, "port": url.port, "username": url.user}

    def unstrip_protocol(self, name: str) -> str:
        return f"{self.location}{self._strip_protocol(name)}"

    def call(self, action: Callable[[asyncssh.SFTPClient], Coroutine[Any, Any, T]], path: str) -> T:
        """Run `action` on the host's SFTP session; SFTP failures become OSErrors naming the URL."""
        session = session_for(self.target, self.access, self.location)
        try:
            return run_on_loop(action(session.sftp))
        except asyncssh.SFTPNoSuchFile as exc:
            raise FileNotFoundError(f"{self.location}{path}: no such file or folder") from exc
        except (OSError, asyncssh.Error) as exc:
            raise OSError(f"{self.location}{path}: {reason(exc)}") from exc

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        folder = self._strip_protocol(path)
        entries = self.call(lambda sftp: sftp.readdir(folder), folder)
        found = [
            _info(posixpath.join(folder, str(e.filename)), e.attrs)
            for e in entries
            if str(e.filename) not in (".", "..")
        ]
        return found if detail else [entry["name"] for entry in found]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        full = self._strip_protocol(path)
        return _info(full, self.call(lambda sftp: sftp.stat(full), full))

    def _open(
        self, path: str, mode: str = "rb", block_size: int | None = None, **kwargs: Any
    ) -> SftpRangeFile:
        if mode != "rb":
            raise PermissionError(
                f"{self.location}{path}: read only (a backup set is never written over SSH)"
            )
        return SftpRangeFile(self, self._strip_protocol(path), block_size=block_size or RANGE_BLOCK)


class SftpRangeFile(AbstractBufferedFile):
    """One remote file, open once; fsspec's block cache asks `_fetch_range` for the blocks it lacks."""

    fs: PinnedSftpFileSystem

    def __init__(self, fs: PinnedSftpFileSystem, path: str, block_size: int) -> None:
        super().__init__(
            fs,
            path,
            "rb",
            block_size=block_size,
            cache_type="blockcache",
            cache_options={"maxblocks": CACHED_BLOCKS},
        )

        async def opened(sftp: asyncssh.SFTPClient) -> asyncssh.SFTPClientFile:
            return await sftp.open(path, "rb")

        self.handle = fs.call(opened, path)
        # A file replaced in place has another size or mtime: its blocks are never taken for the old ones.
        self.identity = (fs.location, path, self.details["size"], self.details.get("mtime"))

    def _fetch_range(self, start: int, end: int) -> bytes:
        key = (*self.identity, start, end)
        kept = _shared.get(key)
        if kept is not None:
            return kept

        async def read(_: asyncssh.SFTPClient) -> bytes:
            return as_bytes(await self.handle.read(end - start, start))

        data = self.fs.call(read, self.path)
        _shared.put(key, data)
        return data

    def close(self) -> None:
        handle = getattr(self, "handle", None)  # none when opening failed
        if handle is not None and not self.closed:
            with contextlib.suppress(OSError, asyncssh.Error):
                run_on_loop(handle.close())
        super().close()


def _info(path: str, attrs: asyncssh.SFTPAttrs) -> dict[str, Any]:
    mode = mode_of(attrs)
    kind = "directory" if stat.S_ISDIR(mode) else "file"
    return {"name": path, "size": int(attrs.size or 0), "type": kind, "mode": mode, "mtime": attrs.mtime}
