"""Positional reads of file extents from one ISO, shared by the deep checker and the restorer.

A local image (a path or `file://` URL) is opened once as a descriptor and read with `os.preadv`
into the caller's buffer (page-aligned, see backupset.hashing), which several threads may do at
once on the one descriptor, or copied by the kernel straight into a local file (`send_to`). Any
other fsspec URL is one file object, read with seek and readinto under a lock, so that it too can
be shared by threads (more slowly).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO, Protocol

import fsspec
from fsspec.implementations.local import LocalFileSystem

from omni_recovery.errors import IntegrityError, UnreadableError


class Sink(Protocol):
    """A file the kernel can append another file's bytes to (targets.partial.PartialFile)."""

    def send_from(self, source: int, position: int, count: int) -> int: ...


class ExtentReader:
    """One ISO file, opened once; `blocks` reads a byte range of it into a given buffer.

    Opening raises what the storage raises (OSError, ValueError): callers decide how to report it.
    """

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        fs, path = fsspec.core.url_to_fs(url)
        self._fd: int | None = None
        self._fh: BinaryIO | None = None
        self._lock = threading.Lock()
        if isinstance(fs, LocalFileSystem):
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        else:
            self._fh = fs.open(path, "rb")

    def _readinto(self, target: memoryview, position: int) -> int:
        if self._fd is not None:
            return os.preadv(self._fd, [target], position)
        assert self._fh is not None
        with self._lock:
            self._fh.seek(position)
            return self._fh.readinto(target) or 0  # type: ignore[attr-defined]

    @property
    def local(self) -> bool:
        """Whether the image is a descriptor of this machine (`send_to` works)."""
        return self._fd is not None

    def send_to(self, out: Sink, offset: int, length: int, path: str) -> None:
        """Append the image's `length` bytes from `offset` to `out` (the kernel copies them: see
        PartialFile.send_from); errors as `read_into`'s, but a failure to write is `out`'s own."""
        assert self._fd is not None
        fd = self._fd
        self._move(offset, length, path, lambda done: out.send_from(fd, offset + done, length - done))

    def read_into(self, target: memoryview, offset: int, path: str) -> None:
        """Fill `target` with the image's bytes from `offset`; IntegrityError naming the ISO and
        `path` if the image ends first, UnreadableError if reading fails."""

        def read(done: int) -> int:
            with target[done:] as rest:
                return self._readinto(rest, offset + done)

        self._move(offset, len(target), path, read)

    def _move(self, offset: int, length: int, path: str, step: Callable[[int], int]) -> None:
        """Call `step(bytes done so far)` until `length` bytes from `offset` have moved; each call
        moves some and says how many (0: the image ended)."""
        done = 0
        while done < length:
            try:
                got = step(done)
            except OSError as exc:
                raise UnreadableError(
                    f"cannot read the image at byte {offset + done}: {exc}", iso=self.name, path=path
                ) from exc
            if got <= 0:
                raise IntegrityError(
                    f"the image ends at byte {offset + done}, before the end of this file",
                    iso=self.name,
                    path=path,
                )
            done += got

    def blocks(self, offset: int, length: int, buffer: memoryview, path: str) -> Iterator[memoryview]:
        """Views of the `length` bytes from `offset`, read into `buffer`; each view is released when
        the next one is asked for. IntegrityError naming the ISO and `path` if the image ends early."""
        position, end = offset, offset + length
        while position < end:
            size = min(len(buffer), end - position)
            with buffer[:size] as block:
                self.read_into(block, position, path)
                yield block
            position += size

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None
