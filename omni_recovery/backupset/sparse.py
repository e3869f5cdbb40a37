"""Sparse files: the digest of the whole file (holes read as zeros) from its stored data ranges.

A sparse file is stored as its data ranges concatenated; its manifest entry gives the ranges, the
digest of those stored bytes (sha256) and the digest of the whole file (logical_sha256). The
writer, the deep check and the restore all meet the stored bytes in order, and feed them to a
`LogicalDigest`, which hashes the zeros of each hole as it is passed, so the whole file's digest
never needs the whole file on disk. Hashing the zeros costs about as much as hashing that many
data bytes (a 1 GiB file with little data: a second or two), and reads nothing.

What can go wrong: stored bytes that do not add up to the ranges (more, or fewer at the end) make
`hexdigest` raise ValueError; callers name the ISO and path.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from omni_recovery.backupset.hashing import aligned_buffer, iter_file_blocks

Range = tuple[int, int]
_ZEROS = bytes(1 << 20)


class LogicalDigest:
    """The sha256 of a `logical_size`-byte file whose data `ranges` are fed in order."""

    def __init__(self, ranges: Sequence[Range], logical_size: int) -> None:
        self._ranges, self._size = list(ranges), logical_size
        self._digest = hashlib.sha256()
        self._position = 0  # in the whole file
        self._index = 0  # the range being fed

    def update(self, block: bytes | memoryview) -> None:
        view = memoryview(block)
        while len(view):
            if self._index >= len(self._ranges):
                raise ValueError("more stored bytes than its sparse ranges hold")
            offset, length = self._ranges[self._index]
            self._zeros(offset - self._position)  # the hole before this range, once
            taken = min(offset + length - self._position, len(view))
            self._digest.update(view[:taken])
            view = view[taken:]
            self._position += taken
            if self._position == offset + length:
                self._index += 1

    def hexdigest(self) -> str:
        if self._index < len(self._ranges):
            raise ValueError("fewer stored bytes than its sparse ranges hold")
        self._zeros(self._size - self._position)
        return self._digest.hexdigest()

    def _zeros(self, count: int) -> None:
        while count > 0:
            step = min(count, len(_ZEROS))
            self._digest.update(memoryview(_ZEROS)[:step])
            count -= step
            self._position += step


def sha256_sparse(path: Path, ranges: Sequence[Range], logical_size: int) -> tuple[str, str]:
    """The digests of the stored bytes (the ranges concatenated) and of the whole file, in one read."""
    stored = hashlib.sha256()
    logical = LogicalDigest(ranges, logical_size)
    fd = os.open(path, os.O_RDONLY)
    try:
        with aligned_buffer() as buffer:
            for offset, length in ranges:
                for block in iter_file_blocks(fd, offset, length, buffer):
                    stored.update(block)
                    logical.update(block)
    finally:
        os.close(fd)
    return stored.hexdigest(), logical.hexdigest()
