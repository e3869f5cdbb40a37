"""A file being written to a local or fsspec root: under its temporary name, renamed when whole.

On a local root the temporary file is held under an exclusive `flock` from its creation to its
rename: a leftover of a killed writer is taken over and emptied, while a path that another live
writer is writing is refused (TargetError), so two restores of one path never mix their bytes. With
the root's `fsync` on, the file is fsynced before its rename and its folder after it, so a name that
survives a power loss always holds the whole content. Holes (`skip_to`, `end_at`) stay holes on a
local root; other roots get zeros.

What can go wrong: an OS or fsspec failure (disk full, permission denied) raises TargetError naming
the temporary or final path; the temporary file is removed on abort, never the final one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import posixpath
import stat
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from omni_recovery.targets.base import partial_relpath

if TYPE_CHECKING:
    from omni_recovery.targets.driver import TargetRoot

_WRITE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
# What a failed sendfile reports about the file written, not the one read.
_WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


class PartialFile:
    """A file being written under its temporary name; `commit()` renames it onto its final name.

    `write` appends; on a local root `send_from` appends bytes of another descriptor without
    passing them through this process, and `written` maps bytes already written, read-only, so
    that they can be hashed where they lie.
    """

    def __init__(self, root: TargetRoot, relpath: str) -> None:
        self.root = root
        self.relpath = relpath
        self.partial = partial_relpath(relpath)
        self.size = 0
        self._done = False
        self._fd: int | None = None
        self._fh: IO[bytes] | None = None
        self._mapping: mmap.mmap | None = None  # see `written`
        self._full = root.resolve(relpath)
        folder = posixpath.dirname(relpath)
        if folder:
            root.makedirs(folder)
        # the temporary name lies in the same, already checked folder
        self._partial_full = posixpath.join(posixpath.dirname(self._full), posixpath.basename(self.partial))
        self._open()

    def _open(self) -> None:
        """Create the temporary file, empty (a root of another kind opens it its own way)."""
        try:
            if self.root.is_local:
                self._fd = self._open_locked()
            else:
                self._fh = self.root.fs.open(self._partial_full, "wb")
        except (OSError, ValueError) as exc:
            raise self.root.error(f"cannot create the temporary file: {exc}", self.partial) from exc

    def _open_locked(self) -> int:
        """Open the temporary file under an exclusive lock, emptied; refuse one another writer holds.

        A leftover of a killed writer is taken over (its lock died with it); a file that a live
        writer holds raises TargetError, so two restores of one path never mix their bytes. The
        inode is checked again after locking, in case the name was renamed into place meanwhile.
        """
        for _ in range(8):
            fd = os.open(self._partial_full, _WRITE_FLAGS, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                opened = os.fstat(fd)
                current = os.lstat(self._partial_full)
            except BlockingIOError as exc:
                os.close(fd)
                raise self.root.error("another writer is writing this file right now", self.partial) from exc
            except FileNotFoundError:
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            if (opened.st_dev, opened.st_ino) != (current.st_dev, current.st_ino):
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
            except BaseException:
                os.close(fd)
                raise
            return fd
        raise self.root.error("the temporary file keeps changing under this writer", self.partial)

    def fileno(self) -> int | None:
        """The open temporary file on a local root (None on others), for metadata set through it."""
        return self._fd

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append all of `data`; returns its length."""
        length = len(data)
        try:
            if self._fd is not None:
                with memoryview(data) as view:  # released even when a failed write's traceback lives on
                    written = 0
                    while written < length:
                        written += os.write(self._fd, view[written:])
            else:
                assert self._fh is not None
                self._fh.write(data)
        except OSError as exc:
            raise self.root.error(f"write failed: {exc}", self.partial) from exc
        self.size += length
        return length

    @property
    def local(self) -> bool:
        """Whether this file is a descriptor of this machine (`send_from` and `written` work)."""
        return self._fd is not None

    def send_from(self, source: int, position: int, count: int) -> int:
        """Append up to `count` bytes of the file `source` from `position`, copied by the kernel
        (os.sendfile: one copy, none into this process); returns how many, 0 at the end of `source`.

        A failure to write raises TargetError; a failure to read, the OSError (the caller names
        what it reads)."""
        assert self._fd is not None
        try:
            sent = os.sendfile(self._fd, source, position, count)
        except OSError as exc:
            if exc.errno not in _WRITE_ERRORS:
                raise
            raise self.root.error(f"write failed: {exc}", self.partial) from exc
        self.size += sent
        return sent

    @contextlib.contextmanager
    def written(self, offset: int, length: int, whole: int) -> Iterator[memoryview]:
        """The `length` bytes written from `offset`, read from the file itself, `whole` bytes long
        once finished: the first call makes it that long (a hole until written) and maps it
        read-only once, so that each block costs no mapping of its own."""
        assert self._fd is not None and offset + length <= whole
        if self._mapping is None:
            try:
                os.ftruncate(self._fd, whole)
            except OSError as exc:
                raise self.root.error(
                    f"write failed: cannot make it {whole} bytes long: {exc}", self.partial
                ) from exc
            try:
                self._mapping = mmap.mmap(self._fd, whole, prot=mmap.PROT_READ)
            except (OSError, ValueError) as exc:
                raise self.root.error(f"cannot map what was written: {exc}", self.partial) from exc
        with memoryview(self._mapping) as view, view[offset : offset + length] as block:
            yield block

    def _unmap(self) -> None:
        if self._mapping is not None:
            mapping, self._mapping = self._mapping, None
            mapping.close()

    def skip_to(self, offset: int) -> None:
        """Leave a hole from the end written so far up to `offset`, where the next write goes (zeros
        on a root that is not local)."""
        if offset < self.size:
            raise self.root.error(f"cannot skip back from {self.size} to {offset}", self.partial)
        if self._fd is None:
            self._zeros(offset - self.size)
            return
        try:
            os.lseek(self._fd, offset, os.SEEK_SET)
        except OSError as exc:
            raise self.root.error(f"seek failed: {exc}", self.partial) from exc
        self.size = offset

    def end_at(self, size: int) -> None:
        """Make the file `size` bytes long, a hole after the last write (zeros on other roots)."""
        if self._fd is None:
            self._zeros(size - self.size)
            return
        try:
            os.ftruncate(self._fd, size)
        except OSError as exc:
            raise self.root.error(f"cannot set the size: {exc}", self.partial) from exc
        self.size = size

    def _zeros(self, count: int) -> None:
        block = bytes(min(count, 1 << 20))
        while count > 0:
            count -= self.write(memoryview(block)[: min(count, len(block))])

    def commit(
        self, *, mode: int | None = None, mtime: float | None = None, sync_folder: bool = True
    ) -> None:
        """Apply mode and mtime, fsync (if the root asks for it), and rename onto the final name.

        With fsync on, the folder is fsynced after the rename unless `sync_folder` is False: then
        the caller fsyncs it (once for many files) before it treats the file as durable.
        """
        root = self.root
        try:
            self._unmap()
            if self._fd is not None:
                fd = self._fd
                if mode is not None:
                    os.fchmod(fd, stat.S_IMODE(mode))
                if mtime is not None:
                    os.utime(fd, (mtime, mtime))
                if root.fsync:
                    os.fsync(fd)
                os.replace(self._partial_full, self._full)  # still locked: nobody took the name over
                self._fd = None
                os.close(fd)
                if root.fsync and sync_folder:
                    root.fsync_folder(posixpath.dirname(self.relpath))
            else:
                assert self._fh is not None
                fh, self._fh = self._fh, None
                fh.close()
                root.fs.mv(self._partial_full, self._full)
                if mode is not None:
                    root.chmod(self.relpath, mode)
        except OSError as exc:
            self.abort()
            raise root.error(f"cannot put the file in place: {exc}", self.relpath) from exc
        self._done = True

    def abort(self) -> None:
        """Remove the temporary file (never the final one), then release it."""
        if self._done:
            return
        self._done = True
        try:
            self._unmap()
            if self._fd is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._partial_full)  # while still holding its lock
            else:
                if self._fh is not None:
                    with contextlib.suppress(OSError, ValueError):
                        self._fh.close()
                    self._fh = None
                self.root.discard(self.partial)
        except OSError as exc:
            raise self.root.error(f"cannot remove the temporary file: {exc}", self.partial) from exc
        finally:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None

    def __enter__(self) -> PartialFile:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._done:
            self.commit()
