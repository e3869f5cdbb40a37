"""Restoring files: content streamed from the ISOs of a backup set onto a target root, every byte verified.

`restore_files()` takes `RestoreItem`s (restorer.items) and
1. checks the whole request first (restorer.jobs): nothing is written when it is inconsistent;
2. creates the folders (`dir` entries and the parents of every file);
3. copies each file (restorer.copying, scheduled by restorer.scheduling, read by restorer.sources)
   to `.{name}.omni-partial` in its final folder, verifying every byte, and renames it onto its
   final name only then; `on_done` hears of it after that rename (and, with fsync on, after the
   file and its folder were fsynced), so a recorded file is always whole, verified and durable;
4. creates the symlinks and hard links, then gives entries their owners, xattrs and mtimes and
   folders their modes and mtimes, deepest first (restorer.attributes).

Resuming: `already_done(path)` skips files the caller recorded as restored (if still of their
size); a file not recorded but in place with the expected size and digest (renamed, verified,
by a run killed before it recorded it) is kept and reported through `on_done`. A restore killed
at any point leaves only whole, verified files under final names, a few `.omni-partial` files
(overwritten by the next run, or swept by `TargetRoot.remove_partials()`), folders without their
final mode and mtime, and missing symlinks; running it again ends as an uninterrupted run would.

Errors: damaged or unreadable bytes and failed authentication raise IntegrityError naming the
ISO and stored path (the file being written is removed); an inconsistent request raises
BackupSetError before anything is written; target failures raise targets.TargetError; paths
that would leave the target root raise UnsafePathError.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import posixpath
import stat
import threading
import time
from collections.abc import Callable, Iterable
from typing import Literal

from omni_recovery.backupset.attributes import mtime_ns
from omni_recovery.backupset.manifest import check_symlink_chains
from omni_recovery.backupset.reader import DataKey
from omni_recovery.restorer.attributes import (
    EntryMetadata,
    FileSettler,
    LocalAccounts,
    apply_metadata,
    apply_over_sftp,
)
from omni_recovery.restorer.items import RestoredFile, RestoreItem, RestoreSummary, restore_items
from omni_recovery.restorer.jobs import FileJob, plan_restore
from omni_recovery.restorer.scheduling import (
    BATCH_FILES,
    MAX_PARALLEL,
    auto_parallel,
    restore_batch,
    run_parallel,
)
from omni_recovery.restorer.sources import Buffers, Copied, Progress, Sources
from omni_recovery.targets import ssh_root
from omni_recovery.targets.driver import TargetRoot, partial_relpath

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

ChunkCheck = Literal["whole", "parts", "both"]
CHUNK_CHECKS: tuple[ChunkCheck, ...] = ("whole", "parts", "both")


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
    plan = plan_restore(items, data_key)
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
    copied = Copied(report)

    for item in sorted(dirs, key=lambda d: d.path):
        target.makedirs(item.path)
        summary.dirs += 1

    todo = []
    size_at = _sizes(target, jobs) if already_done is not None else target.size
    for job in jobs:
        kept = _kept(job, target, already_done, size_at)
        if kept is None:
            todo.append(job)
            continue
        target.discard(partial_relpath(job.path))
        summary.skipped += 1
        summary.bytes_skipped += job.size
        report("skip", job.size)
        if kept == "found" and on_done is not None:
            on_done(job.restored())  # verified now: the caller records it
    todo.sort(key=lambda j: (-j.size, j.path))

    def finished(done: RestoredFile) -> None:
        summary.files += 1
        summary.bytes_written += done.size if done.copied is None else done.copied
        summary.restored.append(done.path)
        if on_done is not None:
            on_done(done)
        copied.finished(done.path, done.size if done.copied is None else done.copied)

    sources = Sources(deadline, cancelled, copied)
    buffers = Buffers(block_size)
    accounts = LocalAccounts()  # each owner name looked up once for the whole restore
    settler = FileSettler(target, numeric_owner, accounts) if target.is_local else None  # not over SSH
    try:
        if parallel == 1:
            for start in range(0, len(todo), BATCH_FILES):
                done, failure = restore_batch(
                    todo[start : start + BATCH_FILES], target, sources, buffers, data_key, settler
                )
                for restored in done:
                    finished(restored)
                if failure is not None:
                    raise failure
        else:
            run_parallel(todo, parallel, finished, target, sources, buffers, data_key, settler)
    finally:
        sources.close()

    for item in sorted(symlinks, key=lambda s: s.path):
        assert item.target is not None
        target.symlink(item.path, item.target)
        summary.symlinks += 1
    _make_links(plan.links, jobs, target, finished)
    summary.hardlinks = len(plan.links)
    # Content first, then what it carries, folders last and deepest first: nothing moves an mtime again.
    settled = settler.settled if settler else set()
    dated = [
        job.parts[0].metadata
        for job in jobs
        if job.parts[0].attributes is not None and job.path not in settled
    ]
    others = [item.metadata for item in (*symlinks, *plan.links)]
    others += [d.metadata for d in sorted(dirs, key=lambda d: d.path.count("/"), reverse=True)]
    refused = sorted(settler.refused) if settler else []
    summary.not_applied = (
        plan.apart + refused + _apply_metadata(target, dated, others, numeric_owner, accounts)
    )
    if target.fsync and target.is_local:
        for folder in sorted({posixpath.dirname(s.path) for s in symlinks} | {d.path for d in dirs}):
            target.fsync_folder(folder)
    summary.seconds = time.perf_counter() - started
    return summary


def _sizes(target: TargetRoot, jobs: list[FileJob]) -> Callable[[str], int | None]:
    """The size of the regular file at a path of `jobs`, None where there is none (target.size): on a
    local root from one listing per folder, not a checked path and an lstat per file."""
    if not target.is_local:
        return target.size
    sizes: dict[str, int] = {}
    for folder in sorted({posixpath.dirname(job.path) for job in jobs}):
        try:
            with os.scandir(target.resolve(folder) if folder else target.root) as entries:
                for entry in entries:
                    if entry.is_file(follow_symlinks=False):
                        sizes[posixpath.join(folder, entry.name)] = entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue  # no such folder (or none readable): nothing there to keep
    return sizes.get


def _kept(
    job: FileJob,
    target: TargetRoot,
    already_done: Callable[[str], bool] | None,
    size_at: Callable[[str], int | None],
) -> Literal["recorded", "found"] | None:
    """Whether a resumed restore keeps the file already at `job.path` rather than writing it again:
    "recorded" as verified by the caller and still of its size; "found" whole (its size and digest
    those of the backup), as an earlier run renamed it into place, verified, but was killed before
    it recorded it; then it is given its mode and mtime, as a restore would. None: restore it."""
    # A sparse file's holes count, as they do on the target.
    if already_done is None or size_at(job.path) != job.final_size:
        return None
    if already_done(job.path):
        return "recorded"
    if target.sha256(job.path)[0] != job.final_sha256:
        return None
    target.chmod(job.path, job.mode)
    if job.mtime is not None:
        target.set_mtime(job.path, job.mtime)
    return "found"


def _make_links(
    links: list[RestoreItem],
    jobs: list[FileJob],
    target: TargetRoot,
    finished: Callable[[RestoredFile], None],
) -> None:
    """Each later name of a restored file made a hard link to it, and reported as restored (its
    content is its first name's, verified)."""
    by_path = {job.path: job for job in jobs}
    for item in links:
        assert item.hardlink is not None
        target.hardlink(item.path, item.hardlink)
        finished(by_path[item.hardlink].restored(item.path))


def _apply_metadata(
    target: TargetRoot,
    dated: list[EntryMetadata],
    others: list[EntryMetadata],
    numeric_owner: bool,
    accounts: LocalAccounts,
) -> list[str]:
    """Owners, modes, xattrs and mtimes of restored entries (first the `dated` files, which got their
    mode and mtime when put in place) on a local root; on an SSH root what SFTP can set; on another,
    the modes and mtimes the root itself can set (fsspec) and one line saying owners and xattrs were
    not."""
    entries = dated + others
    remote = ssh_root(target)
    if remote is not None:
        return apply_over_sftp(remote, entries, numeric_owner, files_dated=True)  # by their commits
    if target.is_local:
        return [
            line
            for index, entry in enumerate(entries)
            for line in apply_metadata(
                target, entry, numeric_owner=numeric_owner, accounts=accounts, mode_set=index < len(dated)
            )
        ]
    for entry in entries:
        if entry.type != "symlink":
            target.chmod(entry.path, stat.S_IMODE(entry.mode))
        if entry.mtime is not None:
            target.set_mtime(entry.path, mtime_ns(entry.mtime) / 1e9)
    if any(e.attributes is not None for e in entries):
        return [f"{target.url}: owners and extended attributes not applied: not a local root"]
    return []
