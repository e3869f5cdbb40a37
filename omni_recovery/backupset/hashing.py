"""SHA-256 over files and byte ranges with large reads into a page-aligned buffer.

`readinto` an `mmap` buffer runs several times faster than into a `bytearray` on these
machines (the bytearray's data sits off a page boundary), and hashlib releases the GIL on
large updates, so this is the one place files are hashed.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BLOCK = 1 << 20


@contextmanager
def aligned_buffer(size: int = BLOCK) -> Iterator[memoryview]:
    buffer = mmap.mmap(-1, size)
    view = memoryview(buffer)
    try:
        yield view
    finally:
        view.release()
        buffer.close()


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
    a single range covering it.
    """
    whole = hashlib.sha256()
    parts = []
    fd = os.open(path, os.O_RDONLY)
    try:
        with aligned_buffer() as buffer:
            for offset, length in ranges:
                part = hashlib.sha256()
                for block in iter_file_blocks(fd, offset, length, buffer):
                    whole.update(block)
                    part.update(block)
                parts.append(part.hexdigest())
    finally:
        os.close(fd)
    return whole.hexdigest(), parts


def sha256_file(path: Path) -> tuple[str, int]:
    """The digest and size of a whole file."""
    size = path.stat().st_size
    digest, _ = sha256_ranges(path, [(0, size)])
    return digest, size
