"""Hashing every stored byte of a backup set once, and refusing files that change meanwhile.

`hash_entries()` fills in each entry's sha256 from one read of its file (a chunked file's parts
and its logical digest in one pass; a sparse file's data ranges and its logical digest). It notes
each file's inode, size, mtime and ctime (ns) as it hashes it, and `check_unchanged()` compares
them once its ISO is written, as tar tells "file changed as we read it": such an ISO would not
match its manifest, so EnvironmentStateError names the files.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from omni_recovery.backup.packing import PlannedIso, Progress, Stored, reading
from omni_recovery.backupset.attributes import FileAttributes, Sparse
from omni_recovery.backupset.hashing import sha256_file, sha256_ranges
from omni_recovery.backupset.manifest import Chunk
from omni_recovery.backupset.sparse import sha256_sparse
from omni_recovery.errors import EnvironmentStateError, some_of

__all__ = ["check_unchanged", "hash_entries"]


def hash_entries(isos: list[PlannedIso], report: Progress) -> None:
    """Fill in every sha256 (and each chunked file's logical digest) from one read of each file."""
    parts: dict[Path, list[Stored]] = {}
    for iso in isos:
        for stored in iso.entries:
            if stored.source == stored.env.abspath:
                stored.seen = _identity(stored.source)
            if stored.ranges is not None:
                _hash_sparse(stored)
                report("hash", stored.size)
            elif stored.window is not None:
                assert stored.source is not None
                parts.setdefault(stored.source, []).append(stored)
            elif stored.source is not None and stored.sha256 is None:
                with reading(stored.source):
                    stored.sha256, size = sha256_file(stored.source)
                _check_size(stored, size)
                report("hash", stored.size)
    for source, pieces in parts.items():
        pieces.sort(key=lambda s: s.window or (0, 0))
        with reading(source):
            whole, digests = sha256_ranges(source, [p.window for p in pieces if p.window])
        logical_size = sum(p.size for p in pieces)
        for index, (piece, digest) in enumerate(zip(pieces, digests, strict=True)):
            piece.sha256 = digest
            piece.chunk = Chunk(piece.env.placement.iso_path, index, len(pieces), logical_size, whole)
            report("hash", piece.size)


def _hash_sparse(stored: Stored) -> None:
    assert stored.source is not None and stored.ranges is not None
    with reading(stored.source):
        stored.sha256, logical_sha256 = sha256_sparse(stored.source, stored.ranges, stored.env.size)
    sparse = Sparse(tuple(stored.ranges), stored.env.size, logical_sha256)
    stored.attributes = dataclasses.replace(stored.attributes or FileAttributes(), sparse=sparse)


def _identity(path: Path) -> tuple[int, int, int, int]:
    """What changes when a file is written to: inode, size, mtime and ctime (ns), as tar compares."""
    with reading(path):
        st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def check_unchanged(entries: list[Stored], name: str) -> None:
    """Refuse an ISO whose files changed after they were hashed: its manifest would not match them."""
    changed = sorted(
        {str(s.source) for s in entries if s.source and s.seen and _identity(s.source) != s.seen}
    )
    if changed:
        raise EnvironmentStateError(
            f"{some_of(changed, 5)}: changed while being backed up (after hashing, before {name} was "
            "whole), so the set would not validate. Stop what writes there or back up a snapshot, then run "
            "the backup again"
        )


def _check_size(stored: Stored, size: int) -> None:
    if size != stored.size:
        raise EnvironmentStateError(
            f"{stored.source}: changed size while being backed up ({stored.size} then {size} bytes)"
        )
