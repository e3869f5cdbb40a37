"""The restore's plan, checked before anything is written: which folders, files and links to make.

`plan_restore()` groups the parts of a chunked file into their logical file (parts may come from
different ISOs) and checks that they are complete, numbered 0..n-1 and agree on size and digest;
an encrypted file needs the data key; a path may be restored only once. A later name of a hard
link whose first name is restored too becomes a link to it; otherwise the first of its other
names is restored as a file and the rest become links to that. A failure raises BackupSetError
naming the ISO and the stored path, before anything is written.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from omni_recovery.backupset import keys
from omni_recovery.backupset.attributes import Sparse, mtime_ns
from omni_recovery.backupset.reader import DataKey
from omni_recovery.errors import BackupSetError
from omni_recovery.restorer.items import RestoredFile, RestoreItem

__all__ = ["FileJob", "RestorePlan", "plan_restore"]


@dataclass(frozen=True)
class FileJob:
    """One file to write: its parts (one, or a chunked file's, in order) and what its bytes must be."""

    path: str
    parts: tuple[RestoreItem, ...]
    size: int  # bytes written to the target
    sha256: str  # digest of the bytes written
    mode: int
    mtime_ns: int | None  # to the nanosecond, parsed once
    check_parts: bool = False  # chunked files: hash every part against its own sha256
    check_whole: bool = True  # chunked files: hash the reassembled whole against logical_sha256
    sparse: Sparse | None = None  # the bytes written go to these data ranges, holes between

    @property
    def chunked(self) -> bool:
        return self.parts[0].chunk_of is not None

    @property
    def mtime(self) -> float | None:
        return None if self.mtime_ns is None else self.mtime_ns / 1e9

    @property
    def final_sha256(self) -> str:
        return self.sparse.logical_sha256 if self.sparse else self.sha256

    @property
    def final_size(self) -> int:
        """The size of the restored file (a sparse file's holes included)."""
        return self.sparse.logical_size if self.sparse else self.size

    def restored(self, path: str | None = None) -> RestoredFile:
        """The restored file of this job (at `path`, for a hard link to it, which copies nothing)."""
        return RestoredFile(
            path or self.path,
            self.final_size,
            self.final_sha256,
            tuple(dict.fromkeys(p.iso_name for p in self.parts)),
            tuple(p.stored_path for p in self.parts),
            copied=0 if path else self.size,
        )


def _timestamp(item: RestoreItem) -> int | None:
    if item.mtime is None:
        return None
    try:
        return mtime_ns(item.mtime)
    except ValueError as exc:
        raise BackupSetError(
            f"mtime {item.mtime!r} is not RFC 3339", iso=item.iso_name, path=item.stored_path
        ) from exc


@dataclass
class RestorePlan:
    dirs: list[RestoreItem]
    jobs: list[FileJob]
    symlinks: list[RestoreItem]
    links: list[RestoreItem]  # later names of a restored file, made as hard links to it
    apart: list[str]  # later names whose first name is not restored: restored as files


def plan_restore(items: Iterable[RestoreItem], data_key: DataKey | None) -> RestorePlan:
    """The plan of `_plan`, and the hard links: a later name whose first name is restored too becomes
    a link to it. Where the first name is not restored, the first of its other names here is
    restored as a file (from the first name's stored bytes) and the rest become links to that."""
    items = list(items)
    plain = [i for i in items if i.hardlink is None]
    files = {i.path for i in plain if i.type == "file"}
    links: dict[str, RestoreItem] = {}
    apart: list[RestoreItem] = []
    stand_ins: dict[str, str] = {}  # a first name not restored -> the name restored in its place
    for item in sorted((i for i in items if i.hardlink is not None), key=lambda i: i.path):
        assert item.hardlink is not None
        if item.path in files:
            raise BackupSetError(
                f"{item.path} would be restored twice", iso=item.iso_name, path=item.stored_path
            )
        if item.hardlink in files:
            links.setdefault(item.path, item)
        elif item.sha256 is None:
            raise BackupSetError(
                f"hard link to {item.hardlink}, which this restore does not include and whose bytes it was "
                "not given",
                iso=item.iso_name,
                path=item.stored_path,
            )
        elif stand_ins.setdefault(item.hardlink, item.path) == item.path:
            apart.append(item)
        else:
            links.setdefault(item.path, dataclasses.replace(item, hardlink=stand_ins[item.hardlink]))
    dirs, jobs, symlinks = _plan(plain + apart, data_key)
    notes = sorted(
        {
            f"{i.path}: restored as a separate file: its other name {i.hardlink} is not restored with it"
            for i in apart
        }
    )
    return RestorePlan(dirs, jobs, symlinks, sorted(links.values(), key=lambda i: i.path), notes)


def _plan(
    items: Iterable[RestoreItem], data_key: DataKey | None
) -> tuple[list[RestoreItem], list[FileJob], list[RestoreItem]]:
    dirs: list[RestoreItem] = []
    symlinks: list[RestoreItem] = []
    singles: list[RestoreItem] = []
    parts: dict[str, list[RestoreItem]] = defaultdict(list)
    seen: dict[str, RestoreItem] = {}
    for item in items:
        if item.type == "dir":
            dirs.append(item)
        elif item.type == "symlink":
            if item.target is None:
                raise BackupSetError("symlink without a target", iso=item.iso_name, path=item.stored_path)
            symlinks.append(item)
        elif item.type == "file":
            if item.sha256 is None or item.extents is None:
                raise BackupSetError(
                    "file without sha256 or extents", iso=item.iso_name, path=item.stored_path
                )
            if item.chunk_of is not None:
                parts[item.path].append(item)
                continue
            singles.append(item)
        else:
            raise BackupSetError(
                f"unknown entry type {item.type!r}", iso=item.iso_name, path=item.stored_path
            )
        if item.path in seen:
            raise BackupSetError(
                f"{item.path} would be restored twice (also from {seen[item.path].iso_name}: "
                f"{seen[item.path].stored_path})",
                iso=item.iso_name,
                path=item.stored_path,
            )
        seen[item.path] = item

    jobs = []
    for item in singles:
        if item.encryption is not None:
            _check_key(item, data_key)
            jobs.append(
                FileJob(
                    item.path,
                    (item,),
                    item.encryption.plaintext_size,
                    item.encryption.plaintext_sha256,
                    item.mode,
                    _timestamp(item),
                )
            )
        else:
            assert item.sha256 is not None
            sparse = item.attributes.sparse if item.attributes else None
            jobs.append(
                FileJob(
                    item.path, (item,), item.size, item.sha256, item.mode, _timestamp(item), sparse=sparse
                )
            )
    for path, pieces in parts.items():
        if path in seen:
            raise BackupSetError(
                f"{path} would be restored twice", iso=pieces[0].iso_name, path=pieces[0].stored_path
            )
        seen[path] = pieces[0]
        jobs.append(_chunked_job(path, pieces, data_key))
    return dirs, jobs, symlinks


def _check_key(item: RestoreItem, data_key: DataKey | None) -> None:
    assert item.encryption is not None
    if data_key is None:
        raise BackupSetError(
            "file is encrypted and no passphrase was given", iso=item.iso_name, path=item.stored_path
        )
    if item.encryption.key_id != data_key.key_id:
        raise BackupSetError(
            f"file is sealed with key {item.encryption.key_id}, not the set's data key {data_key.key_id}",
            iso=item.iso_name,
            path=item.stored_path,
        )


def _chunked_job(path: str, pieces: list[RestoreItem], data_key: DataKey | None) -> FileJob:
    pieces.sort(key=lambda p: p.chunk_index if p.chunk_index is not None else -1)
    first = pieces[0]

    def fail(message: str) -> BackupSetError:
        return BackupSetError(
            f"chunked file {first.chunk_of}: {message}", iso=first.iso_name, path=first.stored_path
        )

    count = first.chunk_count
    if count is None or first.logical_size is None or first.logical_sha256 is None:
        raise fail("a part lacks chunk_count, logical_size or logical_sha256")
    for piece in pieces:
        if (
            piece.chunk_of,
            piece.chunk_count,
            piece.logical_size,
            piece.logical_sha256,
            piece.encryption,
        ) != (first.chunk_of, count, first.logical_size, first.logical_sha256, first.encryption):
            raise fail(f"part {piece.stored_path} in {piece.iso_name} disagrees on its logical file")
    indices = [p.chunk_index for p in pieces]
    if indices != list(range(count)):
        missing = sorted(set(range(count)) - {i for i in indices if i is not None})
        raise fail(f"parts are not 0..{count - 1} exactly once (missing {missing}, found {indices})")
    if sum(p.size for p in pieces) != first.logical_size:
        raise fail(
            f"the parts hold {sum(p.size for p in pieces)} bytes, logical_size is {first.logical_size}"
        )
    if first.encryption is not None:
        # Sealed as a whole, then split: the parts' bytes are the ciphertext and its tag.
        _check_key(first, data_key)
        if first.encryption.plaintext_size + keys.TAG_SIZE != first.logical_size:
            raise fail("logical_size is not plaintext_size plus the 16-byte tag")
        size, sha256 = first.encryption.plaintext_size, first.encryption.plaintext_sha256
    else:
        size, sha256 = first.logical_size, first.logical_sha256
    return FileJob(path, tuple(pieces), size, sha256, first.mode, _timestamp(first))
