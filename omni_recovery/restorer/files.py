"""Restoring files: content streamed from the ISOs of a backup set onto a target root, every byte verified.

How it works
------------
The caller describes what to restore as `RestoreItem`s (one per manifest entry, built from the
catalog rows, or from opened readers with `restore_items()`): where the stored bytes lie (ISO
file and extent offset), what they must hash to, and where they go under the target root.
`restore_files()` then

1. checks the whole request first: parts of a chunked file are grouped into their logical file
   (parts may come from different ISOs) and must be complete, numbered 0..n-1 and agree on
   size and digest; an encrypted file needs the data key; a path may be restored only once.
   Nothing is written when this fails;
2. creates the folders (`dir` entries and the parents of every file);
3. copies each file with `os.preadv` reads straight from the ISO file into a page-aligned
   buffer (128 KiB, so that hashing and writing re-read it from the CPU cache; each local ISO
   is opened once and shared by all threads; other fsspec URLs are read through one locked
   file object per ISO), hashing it while writing it to `.{name}.omni-partial` in its final
   folder (a chunked file's parts, from whichever ISOs hold them, go in index order into one
   file; see below). Sealed files are decrypted on the way and authenticated (AES-256-GCM tag,
   path as associated data), then checked against their plaintext digest and size; a sealed
   file larger than the writer's chunk size was sealed whole and then split, so its parts (each
   checked against its own sha256) are decrypted in order as one stream, bound to the logical
   path (`chunk_of`). Only when
   every check has passed is the file given its mode and mtime and renamed onto its final
   name; `on_done` is called after that rename (from the calling thread; with fsync on, also
   after the file was fsynced before its rename and its folder after it — once per folder for
   a batch of files), so a recorded file is always a whole, verified, durable file;
4. creates the symlinks and hard links (after the files), then gives format 1.1 entries their
   owners, xattrs and nanosecond mtimes and folders their modes and mtimes, deepest first
   (restorer.attributes; a sparse file is written with its holes by restorer.sparse).

Every byte is hashed once. A chunked file is checked, by `chunk_check`:
- "whole" (the default): against its logical_sha256, which covers every byte of every part (and
  their order); only when that fails are the parts hashed again, from the ISOs, so that the
  error names the damaged part's ISO and path;
- "parts": each part against its own sha256, the error naming the damaged part directly. That
  the parts make up logical_sha256 is then not checked here: the caller must know it already;
- "both": the parts and the whole, a second digest of every byte.

With `parallel` > 1, files run on a thread pool (preadv, hashlib and write release the GIL),
largest first, small files in batches. A large or chunked file is copied by one thread while
another hashes the very buffers it wrote (`_PipedCopy`), so that it takes about the longer of
the copy and the hash, not their sum. The default (`parallel=None`) is `auto_parallel()`: the
CPUs this process may use, from 1 to 4 (see bench/restore_vs_bsdtar.py for the figures).

Resuming
--------
`already_done(path)` lets the caller skip files it has recorded as restored and verified (the
recovery database's restored_files table); a file is skipped only when it is also present with
the expected size, otherwise it is restored again. A file it has not recorded but that is in
place with the expected size and digest (renamed into place, verified, by a run killed before it
recorded it) is kept too, not rewritten, and reported through `on_done`. Folders and symlinks
are cheap and idempotent and are simply made again.

What an interrupted restore leaves behind
-----------------------------------------
A restore killed at any point (SIGKILL included) leaves: every file it renamed into place,
whole and verified (some of them, renamed just before the kill, possibly not yet recorded
through `on_done`: the next run hashes those and keeps them); one
`.{name}.omni-partial` per file that was being written (a few: the files in flight), which
the next run overwrites (or removes, for a file it skips); folders without their final mode
and mtime; and missing symlinks. Never a partial or unverified file under a final name.
Running the same restore again finishes with exactly the result of an uninterrupted run,
rewriting no file it had renamed into place. `TargetRoot.remove_partials()` sweeps leftovers
when the same restore is not run again.

What can go wrong
-----------------
Bytes that differ from their recorded digest or size, a truncated ISO, an ISO that cannot be read
(an I/O error: UnreadableError), or a sealed file that fails authentication raise IntegrityError
naming the ISO and the stored path; the file being
written is removed and nothing is left at its final path (files already finished stay). An
inconsistent request (missing part, duplicate path, encrypted file without a key) raises
BackupSetError before anything is written. Target failures raise targets.TargetError; paths
that would leave the target root raise UnsafePathError.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import mmap
import os
import posixpath
import queue
import stat
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Literal

from omni_recovery.backupset import keys, layout
from omni_recovery.backupset.attributes import FileAttributes, Sparse, mtime_ns
from omni_recovery.backupset.extents import ExtentReader
from omni_recovery.backupset.hashing import BufferRing
from omni_recovery.backupset.manifest import Encryption, ManifestEntry, check_symlink_chains
from omni_recovery.backupset.reader import DataKey, IsoReader
from omni_recovery.envstate.model import env_path
from omni_recovery.errors import BackupSetError, DeadlineExceeded, IntegrityError, Interrupted
from omni_recovery.restorer.attributes import EntryMetadata, apply_metadata
from omni_recovery.restorer.sparse import SparseFile
from omni_recovery.targets.driver import PartialFile, TargetRoot, partial_relpath
from omni_recovery.targets.ssh import SshRoot

__all__ = [
    "CHUNK_CHECKS",
    "DEFAULT_BLOCK_SIZE",
    "MAX_PARALLEL",
    "ChunkCheck",
    "RestoreItem",
    "RestoreSummary",
    "RestoredFile",
    "auto_parallel",
    "restore_files",
    "restore_items",
]

DEFAULT_BLOCK_SIZE = 128 << 10  # fits in L2: hashing and writing re-read the block from cache
MAX_PARALLEL = 4
# With parallel > 1, files this large (and every chunked file) are copied by one thread while
# another hashes them, through PIPE_DEPTH buffers of PIPE_BLOCK bytes (see _PipedCopy).
PIPED_MIN_SIZE = 32 << 20
PIPE_BLOCK = 1 << 20
PIPE_DEPTH = 8
# Smaller files go to the pool in batches of at most this many files or bytes; with fsync on,
# each folder of a batch is fsynced once, after the batch's renames and before they are reported.
BATCH_FILES = 32
BATCH_BYTES = 8 << 20
# A file this far along is reported as progress before it is finished (a big file would otherwise
# show nothing for minutes).
PROGRESS_BYTES = 64 << 20

Progress = Callable[[str, int], None]
ChunkCheck = Literal["whole", "parts", "both"]
CHUNK_CHECKS: tuple[ChunkCheck, ...] = ("whole", "parts", "both")


@dataclass(frozen=True, slots=True)
class RestoreItem:
    """One manifest entry to restore: where its stored bytes lie and where they go.

    `path` is relative to the target root (the environment path, `envstate.model.env_path`);
    all parts of a chunked file carry the same `path` (that of `chunk_of`). `mode` is the
    manifest's st_mode (only the permission bits are applied); `mtime` is RFC 3339 or None.
    `extents` are the (byte offset in the ISO, length) of the stored bytes' sections, in order
    (files only; a multi-extent file may have several, anywhere in the image).
    """

    iso_url: str
    iso_name: str
    stored_path: str
    path: str
    type: str = "file"
    size: int = 0
    sha256: str | None = None
    mode: int = 0o644
    target: str | None = None
    extents: tuple[tuple[int, int], ...] | None = None
    chunk_of: str | None = None
    chunk_index: int | None = None
    chunk_count: int | None = None
    logical_size: int | None = None
    logical_sha256: str | None = None
    encryption: Encryption | None = None
    mtime: str | None = None
    attributes: FileAttributes | None = None
    # A later name of an inode: the target path of its first name. The item carries the first
    # name's stored bytes (see `link_item`) when the first name may not be restored with it.
    hardlink: str | None = None

    @property
    def metadata(self) -> EntryMetadata:
        return EntryMetadata(self.path, self.type, self.mode, self.mtime, self.attributes)

    @classmethod
    def from_manifest(
        cls,
        iso_url: str,
        iso_name: str,
        entry: ManifestEntry,
        *,
        path: str,
        extents: Sequence[tuple[int, int]] | None,
    ) -> RestoreItem:
        chunk = entry.chunk
        return cls(
            iso_url=iso_url,
            iso_name=iso_name,
            stored_path=entry.path,
            path=path,
            type=entry.type,
            size=entry.size,
            sha256=entry.sha256,
            mode=entry.mode,
            target=entry.target,
            extents=None if extents is None else tuple(extents),
            chunk_of=chunk.chunk_of if chunk else None,
            chunk_index=chunk.chunk_index if chunk else None,
            chunk_count=chunk.chunk_count if chunk else None,
            logical_size=chunk.logical_size if chunk else None,
            logical_sha256=chunk.logical_sha256 if chunk else None,
            encryption=entry.encryption,
            mtime=entry.mtime,
            attributes=entry.attributes,
        )

    def link_item(self, first: RestoreItem) -> RestoreItem:
        """This hard link (a later name) as an item carrying its first name's stored bytes: restored
        as a link to `first.path` when the first name is restored with it, else as a file."""
        return dataclasses.replace(
            first, path=self.path, mtime=self.mtime, attributes=self.attributes, hardlink=first.path
        )

    @property
    def extent_offset(self) -> int | None:
        """Where the stored bytes start in the ISO (their first section), None if not a file."""
        return self.extents[0][0] if self.extents else None


@dataclass(frozen=True, slots=True)
class RestoredFile:
    """A file that was written, verified and renamed into place."""

    path: str
    size: int
    sha256: str
    isos: tuple[str, ...]
    stored_paths: tuple[str, ...]
    copied: int | None = None  # bytes copied from the set, when not `size` (a sparse file, a hard link)


@dataclass
class RestoreSummary:
    files: int = 0
    skipped: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes_written: int = 0
    bytes_skipped: int = 0
    seconds: float = 0.0
    restored: list[str] = field(default_factory=list)
    hardlinks: int = 0
    # What the target could not take (an owner, an xattr), and hard links restored as separate
    # files: one line per path, for the report.
    not_applied: list[str] = field(default_factory=list)


def restore_items(reader: IsoReader) -> list[RestoreItem]:
    """RestoreItems for every environment file of one opened ISO (metadata and the data key left out)."""
    items = []
    links = []
    for entry in reader.manifest.files:
        if not entry.path.startswith("data/") or entry.path == layout.DATA_KEY_PATH:
            continue
        if entry.hardlink is not None:
            links.append(
                RestoreItem.from_manifest(
                    reader.url, reader.name, entry, path=env_path(entry.path), extents=None
                )
            )
            continue
        logical = entry.chunk.chunk_of if entry.chunk else entry.path
        extents = None
        if entry.type == "file":
            image_entry = reader.listing.get(entry.path)
            if image_entry is None or image_entry.type != "file":
                raise BackupSetError(
                    "file listed in the manifest is missing from the image", iso=reader.name, path=entry.path
                )
            extents = image_entry.extents
        items.append(
            RestoreItem.from_manifest(reader.url, reader.name, entry, path=env_path(logical), extents=extents)
        )
    return items + resolve_links(links, items)


def resolve_links(links: Sequence[RestoreItem], files: Sequence[RestoreItem]) -> list[RestoreItem]:
    """Hard link items (their `hardlink` still the stored path of the first name) given the stored bytes
    of their first name from `files` where it is among them, else only its target path."""
    by_stored: dict[str, list[RestoreItem]] = defaultdict(list)
    for item in files:
        by_stored[item.chunk_of or item.stored_path].append(item)
    resolved: list[RestoreItem] = []
    for link in links:
        assert link.attributes is not None and link.attributes.hardlink is not None
        first = by_stored.get(link.attributes.hardlink)
        if first:
            resolved.extend(link.link_item(part) for part in first)
        else:
            resolved.append(dataclasses.replace(link, hardlink=env_path(link.attributes.hardlink)))
    return resolved


# -- the plan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FileJob:
    path: str
    parts: tuple[RestoreItem, ...]
    size: int  # bytes written to the target
    sha256: str  # digest of the bytes written
    mode: int
    mtime: float | None
    check_parts: bool = False  # chunked files: hash every part against its own sha256
    check_whole: bool = True  # chunked files: hash the reassembled whole against logical_sha256
    sparse: Sparse | None = None  # the bytes written go to these data ranges, holes between

    @property
    def chunked(self) -> bool:
        return self.parts[0].chunk_of is not None

    @property
    def final_size(self) -> int:
        """The size of the restored file (a sparse file's holes included)."""
        return self.sparse.logical_size if self.sparse else self.size


def _timestamp(item: RestoreItem) -> float | None:
    if item.mtime is None:
        return None
    try:
        return layout.parse_time(item.mtime).timestamp()
    except ValueError as exc:
        raise BackupSetError(
            f"mtime {item.mtime!r} is not RFC 3339", iso=item.iso_name, path=item.stored_path
        ) from exc


@dataclass
class _Plan:
    dirs: list[RestoreItem]
    jobs: list[_FileJob]
    symlinks: list[RestoreItem]
    links: list[RestoreItem]  # later names of a restored file, made as hard links to it
    apart: list[str]  # later names whose first name is not restored: restored as files


def _plan_with_links(items: Iterable[RestoreItem], data_key: DataKey | None) -> _Plan:
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
    return _Plan(dirs, jobs, symlinks, sorted(links.values(), key=lambda i: i.path), notes)


def _plan(
    items: Iterable[RestoreItem], data_key: DataKey | None
) -> tuple[list[RestoreItem], list[_FileJob], list[RestoreItem]]:
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
                _FileJob(
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
                _FileJob(
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


def _chunked_job(path: str, pieces: list[RestoreItem], data_key: DataKey | None) -> _FileJob:
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
    return _FileJob(path, tuple(pieces), size, sha256, first.mode, _timestamp(first))


class _Copied:
    """Bytes read for each file so far, reported as "restore" progress once a file is PROGRESS_BYTES
    further along, and the rest when it is finished: each restored byte is reported once (a file
    that then fails has been reported in part), from whichever thread copies it."""

    def __init__(self, report: Progress) -> None:
        self.report = report
        self._lock = threading.Lock()
        self._read: dict[str, int] = defaultdict(int)
        self._reported: dict[str, int] = defaultdict(int)

    def add(self, path: str, amount: int) -> None:
        with self._lock:
            self._read[path] += amount
            due = self._read[path] - self._reported[path]
            if due < PROGRESS_BYTES:
                return
            self._reported[path] += due
        self.report("restore", due)

    def finished(self, path: str, size: int) -> None:
        with self._lock:
            self._read.pop(path, None)
            already = self._reported.pop(path, 0)
        self.report("restore", max(0, size - already))


# -- reading the ISOs ----------------------------------------------------------------------


class _Sources:
    """Each ISO opened once (an `ExtentReader`) and shared by every worker thread; reads stop at the
    deadline (a `time.monotonic()` value) or when `cancelled` is set, if given."""

    def __init__(
        self,
        deadline: float | None = None,
        cancelled: threading.Event | None = None,
        copied: _Copied | None = None,
    ) -> None:
        self._open: dict[str, ExtentReader] = {}
        self._lock = threading.Lock()
        self.deadline = deadline
        self.cancelled = cancelled
        self.copied = copied

    def blocks(self, item: RestoreItem, buffer: memoryview) -> Iterator[memoryview]:
        """The stored bytes of `item`, section after section, a buffer's worth at a time."""
        for offset, length in _sections(item):
            for block in self.get(item).blocks(offset, length, buffer, item.stored_path):
                self._after_read(item, len(block))
                yield block

    def read_into(self, item: RestoreItem, start: int, block: memoryview) -> None:
        """Fill `block` with the stored bytes of `item` from `start` (in the file, across sections)."""
        filled, reader = 0, self.get(item)
        for offset, length in _sections(item):
            if start >= length:
                start -= length
                continue
            take = min(length - start, len(block) - filled)
            with block[filled : filled + take] as part:
                reader.read_into(part, offset + start, item.stored_path)
            filled, start = filled + take, 0
            if filled == len(block):
                break
        self._after_read(item, len(block))

    def _after_read(self, item: RestoreItem, read: int) -> None:
        """Count what was read toward progress; stop past the deadline or once cancelled."""
        if self.copied is not None:
            self.copied.add(item.path, read)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DeadlineExceeded(
                f"the time given to this restore ran out while restoring {item.path} "
                f"(from {item.iso_name}: {item.stored_path})"
            )
        if self.cancelled is not None and self.cancelled.is_set():
            raise Interrupted(f"interrupted while restoring {item.path}")

    def get(self, item: RestoreItem) -> ExtentReader:
        source = self._open.get(item.iso_url)
        if source is None:
            with self._lock:
                source = self._open.get(item.iso_url)
                if source is None:
                    try:
                        source = ExtentReader(item.iso_url, item.iso_name)
                    except (OSError, ValueError) as exc:
                        raise BackupSetError(f"cannot open the image: {exc}", iso=item.iso_name) from exc
                    self._open[item.iso_url] = source
        return source

    def close(self) -> None:
        for source in self._open.values():
            source.close()
        self._open.clear()


def _sections(item: RestoreItem) -> Iterator[tuple[int, int]]:
    """`item`'s sections, cut to its manifest size; IntegrityError if they hold less than that."""
    left = item.size
    for offset, length in item.extents or ():
        if left <= 0:
            break
        yield offset, min(length, left)
        left -= length
    if left > 0:
        raise IntegrityError(
            f"the image records {item.size - left} of its {item.size} bytes",
            iso=item.iso_name,
            path=item.stored_path,
        )


class _Buffers(threading.local):
    """One page-aligned buffer per worker thread (threading.local runs __init__ in every thread)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.view: memoryview | None = None

    def get(self) -> memoryview:
        if self.view is None:
            self.view = memoryview(mmap.mmap(-1, self.size))
        return self.view


# -- copying one file ----------------------------------------------------------------------


def _mismatch(job: _FileJob, digest: str, sources: _Sources, buffer: memoryview) -> IntegrityError:
    """The error for a file whose whole digest is wrong, naming the damaged part when there is one.

    A chunked file's whole is checked against logical_sha256; when that fails, the stored bytes
    of each part are hashed again against the part's own sha256 so that the error names the ISO
    and path that are damaged (or, when every part is intact, the first part: the set is then
    inconsistent).
    """
    first = job.parts[0]
    if not job.chunked:
        return IntegrityError(
            f"sha256 is {digest}, the manifest says {job.sha256} (restoring {job.path})",
            iso=first.iso_name,
            path=first.stored_path,
        )
    for piece in job.parts:
        part = hashlib.sha256()
        for block in sources.blocks(piece, buffer):
            part.update(block)
        if part.hexdigest() != piece.sha256:
            return IntegrityError(
                f"sha256 is {part.hexdigest()}, the manifest says {piece.sha256} (part {piece.chunk_index} "
                f"of {job.path}, whose reassembled sha256 {digest} is not its logical_sha256 {job.sha256})",
                iso=piece.iso_name,
                path=piece.stored_path,
            )
    return IntegrityError(
        f"the reassembled {first.chunk_of} has sha256 {digest}, logical_sha256 is {job.sha256}, "
        f"although every part matches its own sha256 (restoring {job.path})",
        iso=first.iso_name,
        path=first.stored_path,
    )


def _part_mismatch(job: _FileJob, piece: RestoreItem, digest: str) -> IntegrityError:
    return IntegrityError(
        f"sha256 is {digest}, the manifest says {piece.sha256} (restoring {job.path})",
        iso=piece.iso_name,
        path=piece.stored_path,
    )


def _copy_plain(job: _FileJob, out: PartialFile, sources: _Sources, buffer: memoryview) -> None:
    """Copy a file (all its parts, in order), hashing the whole and/or each part as it goes."""
    whole = hashlib.sha256() if job.check_whole else None
    for piece in job.parts:
        part = hashlib.sha256() if job.check_parts else None
        for block in sources.blocks(piece, buffer):
            if whole is not None:
                whole.update(block)
            if part is not None:
                part.update(block)
            out.write(block)
        if part is not None and part.hexdigest() != piece.sha256:
            raise _part_mismatch(job, piece, part.hexdigest())
    if whole is not None and whole.hexdigest() != job.sha256:
        raise _mismatch(job, whole.hexdigest(), sources, buffer)


def _copy_sealed(
    job: _FileJob, out: PartialFile, sources: _Sources, buffer: memoryview, data_key: DataKey
) -> None:
    """Decrypt a sealed file (a chunked one: its parts in order, which hold the ciphertext and tag of
    the whole, sealed under the logical path), checking each part's stored sha256 on the way."""
    item = job.parts[0]
    assert item.encryption is not None
    nonce = keys.unb64(item.encryption.nonce, what="nonce", size=keys.NONCE_SIZE)
    opener = keys.Opener(data_key.key, nonce, item.chunk_of or item.stored_path, iso=item.iso_name)
    plain, size = hashlib.sha256(), 0
    for piece in job.parts:
        stored = hashlib.sha256()
        for block in sources.blocks(piece, buffer):
            stored.update(block)
            text = opener.update(block)  # type: ignore[arg-type]
            plain.update(text)
            size += out.write(text)
        if stored.hexdigest() != piece.sha256:
            raise _part_mismatch(job, piece, stored.hexdigest())
    tail = opener.finalize()
    plain.update(tail)
    size += out.write(tail)
    if size != job.size or plain.hexdigest() != job.sha256:
        raise IntegrityError(
            f"decrypted content differs from plaintext_sha256/plaintext_size (restoring {job.path})",
            iso=item.iso_name,
            path=item.stored_path,
        )


def _begin(target: TargetRoot, job: _FileJob) -> PartialFile:
    return SparseFile(target, job.path, job.sparse) if job.sparse else target.begin(job.path)


def _restore_one(
    job: _FileJob, target: TargetRoot, sources: _Sources, buffers: _Buffers, data_key: DataKey | None
) -> RestoredFile:
    out = _begin(target, job)
    try:
        if job.parts[0].encryption is not None:
            assert data_key is not None
            _copy_sealed(job, out, sources, buffers.get(), data_key)
        else:
            _copy_plain(job, out, sources, buffers.get())
        out.commit(mode=job.mode, mtime=job.mtime, sync_folder=False)  # the caller syncs folders
    except BaseException:
        out.abort()
        raise
    return _restored(job)


def _sync_folders(target: TargetRoot, done: list[RestoredFile]) -> None:
    """Make the renames of `done` durable (with fsync on): each folder once, before they are reported."""
    if target.fsync and target.is_local:
        for folder in sorted({posixpath.dirname(f.path) for f in done}):
            target.fsync_folder(folder)


_Handed = tuple[int, memoryview, int]  # (part index, buffer, bytes in it)


class _PipedCopy:
    """A large or chunked file copied by one task while another hashes it, on the other CPU.

    The copy task reads the stored bytes of every part, in order, into a ring of PIPE_DEPTH
    page-aligned buffers of PIPE_BLOCK bytes, appends each to the temporary file and hands it
    to the hashing task, which hashes it (the whole file against its sha256 or logical_sha256,
    each part against its own sha256, as the job says) and gives the buffer back. So the file
    takes about the longer of copying and hashing rather than their sum; the bytes hashed are
    the very buffers written, and one thread writes the file, as an extractor does (on these
    machines two threads faulting in a file's new pages at once cost several times the CPU).
    Only once every digest matches is the file renamed into place. If anything fails, the
    other task is stopped and the temporary file removed once the copy task has ended.
    """

    def __init__(self, job: _FileJob, target: TargetRoot, sources: _Sources) -> None:
        self.job, self.sources = job, sources
        self.ring = BufferRing(PIPE_DEPTH, PIPE_BLOCK)
        self.handed: queue.Queue[_Handed | None] = queue.Queue()
        self.stop = threading.Event()
        self.out = _begin(target, job)

    def copy(self) -> None:
        try:
            for index, piece in enumerate(self.job.parts):
                for start in range(0, piece.size, PIPE_BLOCK):
                    buffer = self.ring.take_unless(self.stop)
                    if buffer is None:
                        raise Interrupted(f"stopped copying {self.job.path}")
                    length = min(PIPE_BLOCK, piece.size - start)
                    with buffer[:length] as block:
                        self.sources.read_into(piece, start, block)
                        self.out.write(block)
                    self.handed.put((index, buffer, length))
        finally:
            self.handed.put(None)

    def verify(self, copying: Future[None]) -> RestoredFile:
        job = self.job
        try:
            whole = hashlib.sha256() if job.check_whole else None
            parts = [hashlib.sha256() for _ in job.parts] if job.check_parts else None
            while (handed := self._next(copying)) is not None:
                index, buffer, length = handed
                with buffer[:length] as block:
                    if whole is not None:
                        whole.update(block)
                    if parts is not None:
                        parts[index].update(block)
                self.ring.give(buffer)
            copying.result()  # the copy's own failure: a short image, the deadline, a target error
            if parts is not None:
                for piece, part in zip(job.parts, parts, strict=True):
                    if part.hexdigest() != piece.sha256:
                        raise _part_mismatch(job, piece, part.hexdigest())
            if whole is not None and whole.hexdigest() != job.sha256:
                raise _mismatch(job, whole.hexdigest(), self.sources, self.ring.take())
            self.out.commit(mode=job.mode, mtime=job.mtime)
        except BaseException:
            self.abort(copying)
            raise
        finally:
            self.ring.close()  # the copy task has ended: no thread holds a buffer
        return _restored(job)

    def _next(self, copying: Future[None]) -> _Handed | None:
        """The next block handed over; None when the copy task ended without another (its result
        says whether it finished or failed)."""
        while True:
            with contextlib.suppress(queue.Empty):
                return self.handed.get(timeout=0.05)
            if copying.done() and self.handed.empty():
                return None  # cancelled before it started

    def abort(self, copying: Future[None]) -> None:
        """Stop the copy task, giving buffers back so that it never waits for one; remove the file."""
        self.stop.set()
        while not copying.done():
            with contextlib.suppress(queue.Empty):
                handed = self.handed.get(timeout=0.05)
                if handed is not None:
                    self.ring.give(handed[1])
        self.out.abort()


def _restored(job: _FileJob, path: str | None = None) -> RestoredFile:
    """The restored file of `job` (at `path`, for a hard link to it, which copies nothing)."""
    return RestoredFile(
        path or job.path,
        job.final_size,
        job.sparse.logical_sha256 if job.sparse else job.sha256,
        tuple(dict.fromkeys(p.iso_name for p in job.parts)),
        tuple(p.stored_path for p in job.parts),
        copied=0 if path else job.size,
    )


# -- the whole restore ---------------------------------------------------------------------


def restore_files(
    items: Iterable[RestoreItem],
    target: TargetRoot,
    data_key: DataKey | None,
    *,
    already_done: Callable[[str], bool] | None = None,
    on_done: Callable[[RestoredFile], None] | None = None,
    parallel: int | None = None,
    progress: Progress | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    chunk_check: ChunkCheck = "whole",
    deadline: float | None = None,
    cancelled: threading.Event | None = None,
    numeric_owner: bool = False,
) -> RestoreSummary:
    """Restore `items` onto `target`, verifying every byte; see the module documentation.

    `chunk_check` says what a chunked file is verified against: its logical_sha256 ("whole"),
    its parts' own sha256 ("parts": only when the caller knows the parts make up the whole),
    or both. `progress(phase, bytes)` hears "skip" for each file already restored, and "restore"
    for each file's bytes as they are copied (every PROGRESS_BYTES of a big file, the rest when it
    is whole), possibly from worker threads. Past `deadline` (a `time.monotonic()` value) the
    restore stops with DeadlineExceeded, and once `cancelled` is set with Interrupted, as it stops
    on any failure. Owners are given by name first, unless `numeric_owner` (see restorer.attributes);
    what the target could not take is listed in the summary's `not_applied`.
    """
    started = time.perf_counter()
    if parallel is None:
        parallel = auto_parallel()
    if parallel < 1:
        raise ValueError("parallel must be at least 1")
    if block_size < mmap.PAGESIZE or block_size % mmap.PAGESIZE:
        raise ValueError(f"block_size must be a multiple of {mmap.PAGESIZE}")
    if chunk_check not in CHUNK_CHECKS:
        raise ValueError(f"chunk_check must be one of {', '.join(CHUNK_CHECKS)}")
    plan = _plan_with_links(items, data_key)
    dirs, jobs, symlinks = plan.dirs, plan.jobs, plan.symlinks
    # Across ISOs too: the links of one volume may lie in several.
    check_symlink_chains({s.stored_path: s.target or "" for s in symlinks}, iso=None)
    if chunk_check != "whole":
        both = chunk_check == "both"
        jobs = [
            dataclasses.replace(job, check_parts=True, check_whole=both) if job.chunked else job
            for job in jobs
        ]
    if symlinks and not target.supports_symlinks:
        raise target.error("the backup holds symbolic links and this target root cannot hold them")
    summary = RestoreSummary()
    report = progress or (lambda phase, amount: None)
    copied = _Copied(report)

    for item in sorted(dirs, key=lambda d: d.path):
        target.makedirs(item.path)
        summary.dirs += 1

    todo = []
    for job in jobs:
        kept = _kept(job, target, already_done)
        if kept is None:
            todo.append(job)
            continue
        target.discard(partial_relpath(job.path))
        summary.skipped += 1
        summary.bytes_skipped += job.size
        report("skip", job.size)
        if kept == "found" and on_done is not None:
            on_done(_restored(job))  # verified now: the caller records it
    todo.sort(key=lambda j: (-j.size, j.path))

    def finished(done: RestoredFile) -> None:
        summary.files += 1
        summary.bytes_written += done.size if done.copied is None else done.copied
        summary.restored.append(done.path)
        if on_done is not None:
            on_done(done)
        copied.finished(done.path, done.size if done.copied is None else done.copied)

    sources = _Sources(deadline, cancelled, copied)
    buffers = _Buffers(block_size)
    try:
        if parallel == 1:
            for start in range(0, len(todo), BATCH_FILES):
                done, failure = _restore_batch(
                    todo[start : start + BATCH_FILES], target, sources, buffers, data_key
                )
                for restored in done:
                    finished(restored)
                if failure is not None:
                    raise failure
        else:
            _run_parallel(todo, parallel, finished, target, sources, buffers, data_key)
    finally:
        sources.close()

    for item in sorted(symlinks, key=lambda s: s.path):
        assert item.target is not None
        target.symlink(item.path, item.target)
        summary.symlinks += 1
    _make_links(plan.links, jobs, target, finished)
    summary.hardlinks = len(plan.links)
    # Content first, then what it carries, folders last and deepest first: nothing moves an mtime again.
    entries = [job.parts[0].metadata for job in jobs if job.parts[0].attributes is not None]
    entries += [item.metadata for item in (*symlinks, *plan.links)]
    entries += [d.metadata for d in sorted(dirs, key=lambda d: d.path.count("/"), reverse=True)]
    summary.not_applied = plan.apart + _apply_metadata(target, entries, numeric_owner)
    if target.fsync and target.is_local:
        for folder in sorted({posixpath.dirname(s.path) for s in symlinks} | {d.path for d in dirs}):
            target.fsync_folder(folder)
    summary.seconds = time.perf_counter() - started
    return summary


def _kept(
    job: _FileJob, target: TargetRoot, already_done: Callable[[str], bool] | None
) -> Literal["recorded", "found"] | None:
    """Whether a resumed restore keeps the file already at `job.path` rather than writing it again:
    "recorded" as verified by the caller and still of its size; "found" whole (its size and digest
    those of the backup), as an earlier run renamed it into place, verified, but was killed before
    it recorded it; then it is given its mode and mtime, as a restore would. None: restore it."""
    whole = _restored(job)  # a sparse file's holes count, as they do on the target
    if already_done is None or target.size(job.path) != whole.size:
        return None
    if already_done(job.path):
        return "recorded"
    if target.sha256(job.path)[0] != whole.sha256:
        return None
    target.chmod(job.path, job.mode)
    if job.mtime is not None:
        target.set_mtime(job.path, job.mtime)
    return "found"


def _make_links(
    links: list[RestoreItem],
    jobs: list[_FileJob],
    target: TargetRoot,
    finished: Callable[[RestoredFile], None],
) -> None:
    """Each later name of a restored file made a hard link to it, and reported as restored (its
    content is its first name's, verified)."""
    by_path = {job.path: job for job in jobs}
    for item in links:
        assert item.hardlink is not None
        target.hardlink(item.path, item.hardlink)
        finished(_restored(by_path[item.hardlink], item.path))


def _apply_metadata(target: TargetRoot, entries: list[EntryMetadata], numeric_owner: bool) -> list[str]:
    """Owners, modes, xattrs and mtimes of restored entries on a local root; on an SSH root what SFTP
    can set; on another, the modes and mtimes the root itself can set (fsspec) and one line saying
    owners and xattrs were not."""
    if target.is_local or isinstance(target, SshRoot):
        return [line for e in entries for line in apply_metadata(target, e, numeric_owner=numeric_owner)]
    for entry in entries:
        if entry.type != "symlink":
            target.chmod(entry.path, stat.S_IMODE(entry.mode))
        if entry.mtime is not None:
            target.set_mtime(entry.path, mtime_ns(entry.mtime) / 1e9)
    if any(e.attributes is not None for e in entries):
        return [f"{target.url}: owners and extended attributes not applied: not a local root"]
    return []


def auto_parallel() -> int:
    """Worker threads for a restore: the CPUs this process may run on, 1 to MAX_PARALLEL.

    Measured on the project's 2-CPU machines (2 GiB, mostly one chunked file): two threads took
    1.3 s where one took 2.2-2.6 s; with the other CPU kept busy by another process, 2.1-2.9 s
    against 2.2-3.0 s, so a second thread does not hurt when the machine is loaded.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_PARALLEL, cpus))


_Outcome = tuple[list[RestoredFile], BaseException | None]


def _restore_batch(
    jobs: list[_FileJob], target: TargetRoot, sources: _Sources, buffers: _Buffers, data_key: DataKey | None
) -> _Outcome:
    """Restore small files one after the other; the files done before a failure are still reported."""
    done: list[RestoredFile] = []
    failure: Exception | None = None
    for job in jobs:
        try:
            done.append(_restore_one(job, target, sources, buffers, data_key))
        except Exception as exc:
            failure = exc
            break
    try:
        _sync_folders(target, done)
    except Exception as exc:
        return [], failure or exc
    return done, failure


def _verify_pipe(pipe: _PipedCopy, copying: Future[None]) -> _Outcome:
    try:
        return [pipe.verify(copying)], None
    except Exception as exc:
        return [], exc


def _run_parallel(
    todo: list[_FileJob],
    parallel: int,
    finished: Callable[[RestoredFile], None],
    target: TargetRoot,
    sources: _Sources,
    buffers: _Buffers,
    data_key: DataKey | None,
) -> None:
    """Restore `todo` on a thread pool, a few tasks queued ahead; results reported from this thread.

    Small files go in batches (of BATCH_FILES files or BATCH_BYTES bytes) to keep the cost of a
    task per file low. Chunked files and files of PIPED_MIN_SIZE or more are copied by a task of
    this pool and hashed by a task of a second pool (`_PipedCopy`), which reports them.
    On the first failure nothing new starts; tasks already running finish (a file they
    complete is whole and verified), unfinished temporary files are removed, and the failure
    is raised.
    """
    pending: set[Future[_Outcome]] = set()
    pipes: list[_PipedCopy] = []
    window = parallel * 4
    pool = ThreadPoolExecutor(parallel, thread_name_prefix="omni-restore")
    hashers = ThreadPoolExecutor(parallel, thread_name_prefix="omni-hash")
    batch: list[_FileJob] = []
    batch_bytes = 0
    try:
        for job in todo:
            # A sealed file is decrypted in order, by one task.
            if job.parts[0].encryption is None and (job.chunked or job.size >= PIPED_MIN_SIZE):
                pipe = _PipedCopy(job, target, sources)
                pipes.append(pipe)
                pending.add(hashers.submit(_verify_pipe, pipe, pool.submit(pipe.copy)))
            else:
                batch.append(job)
                batch_bytes += job.size
                if len(batch) < BATCH_FILES and batch_bytes < BATCH_BYTES:
                    continue
                pending.add(pool.submit(_restore_batch, batch, target, sources, buffers, data_key))
                batch, batch_bytes = [], 0
            if len(pending) >= window:
                pending = _drain(pending, finished)
        if batch:
            pending.add(pool.submit(_restore_batch, batch, target, sources, buffers, data_key))
        while pending:
            pending = _drain(pending, finished)
    except BaseException:
        for pipe in pipes:
            pipe.stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        hashers.shutdown(wait=True, cancel_futures=True)
        pool.shutdown(wait=True)
        for pipe in pipes:
            pipe.out.abort()  # a no-op for files already renamed into place
        raise
    pool.shutdown(wait=True)
    hashers.shutdown(wait=True)


def _drain(pending: set[Future[_Outcome]], finished: Callable[[RestoredFile], None]) -> set[Future[_Outcome]]:
    """Wait for at least one task, report its finished files, raise the first failure; returns the rest."""
    done, rest = wait(pending, return_when=FIRST_COMPLETED)
    failure: BaseException | None = None
    for future in done:
        files, error = future.result()
        for restored in files:
            finished(restored)
        if error is not None and failure is None:
            failure = error
    if failure is not None:
        raise failure
    return rest
