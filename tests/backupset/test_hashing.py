"""SHA-256 of files and of the parts of a chunked file, against hashlib over the same bytes."""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from pathlib import Path

import pytest

from omni_recovery.backupset.hashing import BLOCK, BufferRing, aligned_buffer, sha256_file, sha256_ranges


@pytest.fixture
def data_file(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(3 * BLOCK + 12345)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return path, data


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_parts_and_whole_match_hashlib_across_buffer_boundaries(data_file: tuple[Path, bytes]) -> None:
    path, data = data_file
    cuts = [0, BLOCK + 7, 2 * BLOCK + 7 + 4096, len(data)]
    ranges = [(start, end - start) for start, end in itertools.pairwise(cuts)]
    whole, parts = sha256_ranges(path, ranges)
    assert whole == _sha(data)
    assert parts == [_sha(data[start:end]) for start, end in itertools.pairwise(cuts)]


def test_one_range_is_the_whole(data_file: tuple[Path, bytes]) -> None:
    path, data = data_file
    assert sha256_ranges(path, [(0, len(data))]) == (_sha(data), [_sha(data)])
    assert sha256_file(path) == (_sha(data), len(data))


def test_a_file_shorter_than_its_parts_say_raises_and_leaves_no_thread(data_file: tuple[Path, bytes]) -> None:
    path, data = data_file
    threads = threading.active_count()
    with pytest.raises(EOFError, match="bytes early"):
        sha256_ranges(path, [(0, BLOCK), (BLOCK, len(data))])
    assert threading.active_count() == threads


def test_freeing_buffers_a_failure_still_views_raises_nothing() -> None:
    """A failure raised while a slice of a buffer is alive (its traceback holds it) must come out as
    itself, not as the BufferError of unmapping the buffer in a `finally`."""
    ring = BufferRing(2, 4096)
    held = ring.take()[:100]
    ring.close()  # no BufferError; the buffer is unmapped once `held` goes
    assert held.tobytes() == bytes(100)

    with pytest.raises(ValueError, match="the real failure"), aligned_buffer(4096) as view:
        kept = view[:10]
        raise ValueError("the real failure")
    assert kept.nbytes == 10
