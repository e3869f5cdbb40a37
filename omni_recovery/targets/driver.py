"""The target driver: one node's filesystem root, reached through fsspec, written atomically.

A `TargetRoot` wraps one inventory node's `root` URL (a local folder by default; `memory://`,
`s3://` … through fsspec). Every path handed to it is relative to that root and goes through
`resolve()`, which refuses absolute paths, `..`, `.`, empty segments, NUL and backslashes (the
backup format's own path rule) and checks that the normalised result stays inside the root; where
the filesystem has symlinks it also refuses to write through one on the way to a path. Files are
written by `partial.PartialFile` under a temporary name and renamed into place only when whole
(`open_atomic`, `begin`…`commit`); symlinks follow `base.check_symlink_target`. Modes, mtimes and
symlinks are applied on a local root; on other fsspec protocols where the filesystem implements
them. An `ssh://` root is `targets.ssh.SshRoot` (`targets.open_root` picks the kind by the URL).

What can go wrong: a path that would leave the root raises UnsafePathError; an OS or fsspec failure
(disk full, permission denied, a folder where a file should go) raises TargetError naming the path.
A killed writer leaves at most `.{name}.omni-partial` files, never a partial file under a final
name; `remove_partials()` sweeps them. Folders checked for symlinks are cached per TargetRoot: a
folder swapped for a symlink behind its back by another process is not noticed (use a fresh
TargetRoot per run).
Kept whole: it is one class, `TargetRoot`, whose methods share its root, filesystem and `resolve()`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from omni_recovery.backupset.hashing import aligned_buffer, sha256_file
from omni_recovery.backupset.layout import check_relative_path, is_within
from omni_recovery.errors import UnsafePathError
from omni_recovery.targets.base import (
    PARTIAL_SUFFIX,
    FreeSpace,
    TargetEntry,
    TargetError,
    check_symlink_target,
    partial_relpath,
)
from omni_recovery.targets.partial import PartialFile

__all__ = [
    "PARTIAL_SUFFIX",
    "FreeSpace",
    "PartialFile",
    "TargetEntry",
    "TargetError",
    "TargetRoot",
    "check_symlink_target",
    "partial_relpath",
]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class TargetRoot:
    """One node's root, through fsspec; every path is relative to it and checked."""

    # Restore threads per unit of `parallel`: more where a file waits on round trips, not on a CPU.
    threads_per_parallel = 1

    def __init__(self, url: str, *, fsync: bool = True, create: bool = True) -> None:
        self.url = url
        self.fsync = fsync
        fs, root = fsspec.core.url_to_fs(url)
        self.fs: Any = fs
        self.is_local: bool = isinstance(fs, LocalFileSystem)
        self.root: str = os.path.abspath(root) if self.is_local else root.rstrip("/") or "/"
        # Folders known to be real folders with no symlink on the way (local roots).
        self._checked: set[str] = set()
        if create:
            try:
                if self.is_local:
                    os.makedirs(self.root, exist_ok=True)
                else:
                    fs.makedirs(self.root, exist_ok=True)
            except OSError as exc:
                raise TargetError(f"cannot create the target root: {exc}", root=url) from exc

    def __repr__(self) -> str:
        return f"TargetRoot({self.url!r}, fsync={self.fsync})"

    def error(self, message: str, path: str | None = None) -> TargetError:
        return TargetError(message, root=self.url, path=path)

    @property
    def supports_symlinks(self) -> bool:
        return self.is_local or hasattr(self.fs, "symlink")

    # -- paths ---------------------------------------------------------------------------

    def resolve(self, relpath: str) -> str:
        """The full path of `relpath` under the root; UnsafePathError for anything that leaves it."""
        check_relative_path(relpath)
        normalised = posixpath.normpath(relpath)
        if normalised != relpath or normalised.startswith("../") or normalised == "..":
            raise UnsafePathError("path is not normalised or leaves the target root", path=relpath)
        full = posixpath.join(self.root, normalised)
        if not is_within(self.root, full):
            raise UnsafePathError("path leaves the target root", path=relpath)
        if self.guards_links:
            self._check_no_symlink_on_the_way(posixpath.dirname(normalised))
        return full

    @property
    def guards_links(self) -> bool:
        """Whether the folders on the way to a path are checked for symlinks (filesystems that have them)."""
        return self.is_local

    def _lstat_mode(self, relpath: str) -> int | None:
        """The st_mode of `relpath` itself (a symlink not followed), None when there is nothing there."""
        try:
            return os.lstat(posixpath.join(self.root, relpath)).st_mode
        except FileNotFoundError:
            return None

    def _check_no_symlink_on_the_way(self, folder: str) -> None:
        """Refuse writing through a symlinked folder (local roots); folders checked once are cached."""
        if not folder or folder in self._checked:
            return
        parent = posixpath.dirname(folder)
        self._check_no_symlink_on_the_way(parent)
        try:
            mode = self._lstat_mode(folder)
        except OSError as exc:
            raise self.error(f"cannot inspect folder: {exc}", folder) from exc
        if mode is None:
            return  # not there yet: makedirs creates a real folder
        if stat.S_ISLNK(mode):
            raise UnsafePathError("a symbolic link lies on the way to this path", path=folder)
        if not stat.S_ISDIR(mode):
            raise self.error("not a folder", folder)
        self._checked.add(folder)

    # -- writing -------------------------------------------------------------------------

    def begin(self, relpath: str, size: int | None = None) -> PartialFile:
        """Start writing `relpath` under its temporary name; commit() or abort() the result. `size`,
        when known, lets a root pick how to send the bytes (an SSH root sends big files by ssh)."""
        return PartialFile(self, relpath)

    @contextlib.contextmanager
    def open_atomic(
        self, relpath: str, *, mode: int | None = None, mtime: float | None = None
    ) -> Iterator[PartialFile]:
        """Write `relpath` through its temporary name; renamed into place when the block exits cleanly."""
        partial = self.begin(relpath)
        try:
            yield partial
        except BaseException:
            partial.abort()
            raise
        partial.commit(mode=mode, mtime=mtime)

    def write_bytes_atomic(
        self, relpath: str, data: bytes, *, mode: int | None = None, mtime: float | None = None
    ) -> None:
        with self.open_atomic(relpath, mode=mode, mtime=mtime) as out:
            out.write(data)

    def makedirs(self, relpath: str, mode: int | None = None) -> None:
        """Create a folder (and its parents); apply `mode` to the folder itself when given."""
        if mode is None and relpath in self._checked:
            return
        full = self.resolve(relpath)
        try:
            if self.is_local:
                os.makedirs(full, exist_ok=True)
                self._check_no_symlink_on_the_way(relpath)
            else:
                self.fs.makedirs(full, exist_ok=True)
        except OSError as exc:
            raise self.error(f"cannot create folder: {exc}", relpath) from exc
        if mode is not None:
            self.chmod(relpath, mode)

    def symlink(self, relpath: str, target: str) -> None:
        """Create (or replace) the symlink `relpath` → `target`, which must stay in its files/ tree."""
        check_symlink_target(relpath, target)
        full = self.resolve(relpath)
        if not self.is_local:
            if not hasattr(self.fs, "symlink"):
                raise self.error(f"{self.fs.protocol} roots cannot hold symbolic links", relpath)
            self.fs.symlink(target, full)
            return
        if os.path.islink(full) and os.readlink(full) == target:
            return
        self._put_in_place(relpath, lambda temp: os.symlink(target, temp), "cannot create symlink")

    def hardlink(self, relpath: str, existing: str) -> None:
        """Make `relpath` another name of the file `existing` (replacing what is there); a copy of it
        on a root that is not local."""
        full, source = self.resolve(relpath), self.resolve(existing)
        if not self.is_local:
            self.fs.cp_file(source, full)
            return
        if os.path.lexists(full) and os.path.samestat(os.lstat(full), os.lstat(source)):
            return  # already a name of it (a resumed restore); a rename onto it would do nothing

        def make(temp: str) -> None:
            os.link(source, temp, follow_symlinks=False)

        self._put_in_place(relpath, make, f"cannot make it a hard link to {existing}")

    def _put_in_place(self, relpath: str, make: Callable[[str], None], failure: str) -> None:
        """`make` an entry under the temporary name of `relpath`, then rename it onto `relpath`."""
        parent = posixpath.dirname(relpath)
        if parent:
            self.makedirs(parent)
        try:
            temp = self.resolve(partial_relpath(relpath))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            make(temp)
            os.replace(temp, self.resolve(relpath))
        except OSError as exc:
            raise self.error(f"{failure}: {exc}", relpath) from exc

    def chmod(self, relpath: str, mode: int) -> None:
        """Set the permission bits of `relpath`; a symlink (which has none) is left alone, never followed."""
        full = self.resolve(relpath)
        try:
            if self.is_local:
                if stat.S_ISLNK(os.lstat(full).st_mode):
                    return
                os.chmod(full, stat.S_IMODE(mode))
            elif hasattr(self.fs, "chmod"):
                self.fs.chmod(full, stat.S_IMODE(mode))
        except OSError as exc:
            raise self.error(f"cannot change mode: {exc}", relpath) from exc

    def set_mtime(self, relpath: str, mtime: float) -> None:
        """Set the modification time of `relpath` (of a symlink itself); local roots only."""
        if not self.is_local:
            return
        full = self.resolve(relpath)
        try:
            os.utime(full, (mtime, mtime), follow_symlinks=False)
        except OSError as exc:
            raise self.error(f"cannot set mtime: {exc}", relpath) from exc

    def discard(self, relpath: str) -> bool:
        """Remove the file or symlink `relpath` if it exists; True when something was removed."""
        full = self.resolve(relpath)
        try:
            if self.is_local:
                os.unlink(full)
            elif self.fs.exists(full):
                self.fs.rm_file(full)
            else:
                return False
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self.error(f"cannot remove: {exc}", relpath) from exc
        return True

    def fsync_folder(self, relpath: str) -> None:
        """fsync a folder of a local root (makes the renames inside it durable)."""
        if not self.is_local:
            return
        full = posixpath.join(self.root, relpath) if relpath else self.root
        if relpath and relpath not in self._checked:
            full = self.resolve(relpath)
        fd = os.open(full, _DIR_FLAGS)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- reading -------------------------------------------------------------------------

    def free_space(self) -> FreeSpace | None:
        """The free space under a local root (of its nearest existing folder, if it is not made yet);
        None for other fsspec roots, which do not tell."""
        if not self.is_local:
            return None
        folder = self.root
        while not os.path.isdir(folder) and folder != os.path.dirname(folder):
            folder = os.path.dirname(folder)
        try:
            return FreeSpace(os.stat(folder).st_dev, shutil.disk_usage(folder).free)
        except OSError as exc:
            raise self.error(f"cannot tell the free space: {exc}") from exc

    def root_exists(self) -> bool:
        """Whether the root folder itself is there (execute-plan makes it when its parent is)."""
        return os.path.isdir(self.root) if self.is_local else bool(self.fs.isdir(self.root))

    def offers_fsync(self) -> bool:
        """Whether a file written here can be made durable before its rename (fsync)."""
        return self.is_local

    def exists(self, relpath: str) -> bool:
        full = self.resolve(relpath)
        if self.is_local:
            return os.path.lexists(full)
        return bool(self.fs.exists(full))

    def kind(self, relpath: str) -> str | None:
        """What lies at `relpath`: "file", "dir" or "symlink" (not followed); None for nothing."""
        full = self.resolve(relpath)
        if self.is_local:
            try:
                mode = os.lstat(full).st_mode
            except FileNotFoundError:
                return None
            return "symlink" if stat.S_ISLNK(mode) else "dir" if stat.S_ISDIR(mode) else "file"
        if not self.fs.exists(full):
            return None
        return "dir" if self.fs.isdir(full) else "file"

    def size(self, relpath: str) -> int | None:
        """The size of the regular file `relpath`, or None when there is no regular file there."""
        full = self.resolve(relpath)
        if self.is_local:
            try:
                st = os.lstat(full)
            except OSError:
                return None
            return st.st_size if stat.S_ISREG(st.st_mode) else None
        try:
            info = self.fs.info(full)
        except (FileNotFoundError, OSError):
            return None
        return int(info["size"]) if info.get("type") == "file" else None

    def sha256(self, relpath: str) -> tuple[str, int]:
        """SHA-256 and size of the file `relpath`, streamed."""
        try:
            if self.is_local:
                return sha256_file(Path(self.resolve(relpath)))
            digest, size = hashlib.sha256(), 0
            with self.fs.open(self.resolve(relpath), "rb") as fh, aligned_buffer() as buffer:
                while got := fh.readinto(buffer):
                    digest.update(buffer[:got])
                    size += got
            return digest.hexdigest(), size
        except OSError as exc:
            raise self.error(f"cannot read: {exc}", relpath) from exc

    def read_bytes(self, relpath: str) -> bytes:
        full = self.resolve(relpath)
        try:
            if self.is_local:
                with open(full, "rb") as fh:
                    return fh.read()
            return bytes(self.fs.cat_file(full))
        except OSError as exc:
            raise self.error(f"cannot read: {exc}", relpath) from exc

    def download(self, relpath: str, destination: Path) -> None:
        """Copy the file `relpath` to the local path `destination`, streamed, with its mode and mtime."""
        full = self.resolve(relpath)
        try:
            if self.is_local:
                shutil.copy2(full, destination)
            else:
                self.fs.get_file(full, str(destination))
        except OSError as exc:
            raise self.error(f"cannot copy to {destination}: {exc}", relpath) from exc

    def listing(self, under: str = "") -> dict[str, TargetEntry]:
        """Every file, folder and symlink under the root (or its folder `under`), by path relative to
        the root (symlinks not followed); nothing when there is no such folder."""
        out: dict[str, TargetEntry] = {}
        base = self.resolve(under) if under else self.root
        if self.is_local:
            for folder, dirs, files in os.walk(base):
                rel_folder = os.path.relpath(folder, self.root)
                for name in dirs + files:
                    rel = name if rel_folder == "." else f"{rel_folder}/{name}"
                    with contextlib.suppress(FileNotFoundError):  # gone since the folder was read
                        out[rel] = _local_entry(os.path.join(folder, name), rel)
            return out
        prefix = self.root.rstrip("/") + "/"
        if not self.fs.isdir(base):
            return out
        for full, info in self.fs.find(base, withdirs=True, detail=True).items():
            if not full.startswith(prefix) or full.rstrip("/") == base.rstrip("/"):
                continue
            rel = full[len(prefix) :]
            kind = "dir" if info.get("type") == "directory" else "file"
            size = 0 if kind == "dir" else int(info.get("size") or 0)
            out[rel] = TargetEntry(rel, kind, size, info.get("mode"))
        return out

    def remove_partials(self, under: str = "") -> list[str]:
        """Remove every `.*.omni-partial` left by an interrupted write under `under`; returns them."""
        removed = []
        base = self.resolve(under) if under else self.root
        if self.is_local:
            for folder, dirs, files in os.walk(base):
                for name in dirs + files:
                    full = os.path.join(folder, name)
                    if not (name.startswith(".") and name.endswith(PARTIAL_SUFFIX)):
                        continue
                    with contextlib.suppress(FileNotFoundError):  # its writer renamed or removed it
                        if not stat.S_ISDIR(os.lstat(full).st_mode):
                            os.unlink(full)
                            removed.append(os.path.relpath(full, self.root))
            return sorted(removed)
        prefix = self.root.rstrip("/") + "/"
        for full in self.fs.find(base):
            name = posixpath.basename(full)
            if name.startswith(".") and name.endswith(PARTIAL_SUFFIX):
                self.fs.rm_file(full)
                removed.append(full[len(prefix) :])
        return sorted(removed)


def _local_entry(full: str, rel: str) -> TargetEntry:
    st = os.lstat(full)
    if stat.S_ISLNK(st.st_mode):
        return TargetEntry(rel, "symlink", 0, st.st_mode, os.readlink(full))
    if stat.S_ISDIR(st.st_mode):
        return TargetEntry(rel, "dir", 0, st.st_mode)
    return TargetEntry(rel, "file", st.st_size, st.st_mode)
