"""SHA-256 over files and byte ranges with large reads into a page-aligned buffer.

`readinto` an `mmap` buffer runs several times faster than into a `bytearray` on these
machines (the bytearray's data sits off a page boundary), and hashlib releases the GIL on
large updates, so this is the one place files are hashed.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BLOCK = 1 << 20
_RING = 8  # buffers in flight between the two digests of a chunked file


@contextmanager
def aligned_buffer(size: int = BLOCK) -> Iterator[memoryview]:
    buffer = mmap.mmap(-1, size)
    view = memoryview(buffer)
    try:
        yield view
    finally:
        _free(view, buffer)


def _free(view: memoryview, buffer: mmap.mmap) -> None:
    """Unmap `buffer` now if nothing else views it; else when the last view goes (a failure being
    raised may hold a slice of it in its traceback: it must not be replaced by a BufferError)."""
    view.release()
    with contextlib.suppress(BufferError):
        buffer.close()


class BufferRing:
    """`count` page-aligned buffers of `size` bytes handed between threads: one thread takes a
    buffer and fills it, another uses it and gives it back. No memory is used until a buffer is
    touched; `close` frees them, once no thread holds one."""

    def __init__(self, count: int, size: int) -> None:
        self._maps = [mmap.mmap(-1, size) for _ in range(count)]
        self._views = [memoryview(buffer) for buffer in self._maps]
        self._free: queue.Queue[memoryview] = queue.Queue()
        for view in self._views:
            self._free.put(view)

    def take(self) -> memoryview:
        """A free buffer, waiting for one."""
        return self._free.get()

    def take_unless(self, stop: threading.Event) -> memoryview | None:
        """A free buffer, waiting for one; None once `stop` is set."""
        while not stop.is_set():
            with contextlib.suppress(queue.Empty):
                return self._free.get(timeout=0.05)
        return None

    def give(self, view: memoryview) -> None:
        self._free.put(view)

    def close(self) -> None:
        for view, buffer in zip(self._views, self._maps, strict=True):
            _free(view, buffer)


def iter_file_blocks(fd: int, offset: int, length: int, buffer: memoryview) -> Iterator[memoryview]:
    """Yield views of `length` bytes of `fd` from `offset`, reading into `buffer`.

    A short read (the file is shorter than promised) raises EOFError: callers name the file.
    Each yielded view is valid only until the next one is produced.
    """
    position, end = offset, offset + length
    while position < end:
        with buffer[: min(len(buffer), end - position)] as target:
            got = os.preadv(fd, [target], position)
        if got <= 0:
            raise EOFError(f"file ended {end - position} bytes early")
        with buffer[:got] as block:
            yield block
        position += got


def sha256_ranges(path: Path, ranges: list[tuple[int, int]]) -> tuple[str, list[str]]:
    """The digest of the whole file and of each (offset, length) range, in one sequential pass.

    The ranges must be ordered, adjacent and cover the file (the parts of a chunked file), or be
    a single range covering it, whose digest is then the whole's (each byte is hashed once). With
    several ranges each byte goes into two digests: the parts' are taken here while a second
    thread takes the whole's from the same buffers, so the pass costs about one digest's time.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        if len(ranges) == 1:
            whole = hashlib.sha256()
            with aligned_buffer() as buffer:
                for block in iter_file_blocks(fd, *ranges[0], buffer):
                    whole.update(block)
            digest = whole.hexdigest()
            return digest, [digest]
        return _parts_and_whole(fd, ranges)
    finally:
        os.close(fd)


def _parts_and_whole(fd: int, ranges: list[tuple[int, int]]) -> tuple[str, list[str]]:
    """Each range's digest here, the whole's on a second thread, through a ring of _RING buffers:
    this thread reads a buffer, hashes it into its part and hands it over; the other hashes it into
    the whole and gives it back."""
    whole = hashlib.sha256()
    ring = BufferRing(_RING, BLOCK)
    handed: queue.Queue[tuple[memoryview, int] | None] = queue.Queue()

    def hash_whole() -> None:
        while (item := handed.get()) is not None:
            view, got = item
            with view[:got] as block:
                whole.update(block)
            ring.give(view)

    thread = threading.Thread(target=hash_whole, name="omni-hash-whole")
    thread.start()
    parts = []
    try:
        for offset, length in ranges:
            part = hashlib.sha256()
            position, end = offset, offset + length
            while position < end:
                view = ring.take()
                with view[: min(BLOCK, end - position)] as target:
                    got = os.preadv(fd, [target], position)
                if got <= 0:
                    raise EOFError(f"file ended {end - position} bytes early")
                with view[:got] as block:
                    part.update(block)
                handed.put((view, got))
                position += got
            parts.append(part.hexdigest())
    finally:
        handed.put(None)
        thread.join()
        ring.close()
    return whole.hexdigest(), parts


def sha256_file(path: Path) -> tuple[str, int]:
    """The digest and size of a whole file."""
    size = path.stat().st_size
    digest, _ = sha256_ranges(path, [(0, size)])
    return digest, size
