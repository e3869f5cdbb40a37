"""Restoring many files: one after the other, or on a thread pool, largest first.

With `parallel` > 1, files run on a thread pool (preadv, hashlib and write release the GIL),
largest first, small files in batches (BATCH_FILES files or BATCH_BYTES bytes per task). A large
(PIPED_MIN_SIZE or more) or chunked file is copied by a task of the pool while a task of a second
pool hashes it (`restorer.copying.PipedCopy`). Results are reported from the calling thread. With
fsync on, each folder of a batch is fsynced once, after the batch's renames and before they are
reported. The default thread count is `auto_parallel()`: the CPUs this process may use, from 1 to
MAX_PARALLEL (see bench/restore_vs_bsdtar.py for the figures).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from functools import partial

from omni_recovery.backupset.reader import DataKey
from omni_recovery.restorer.attributes import FileSettler
from omni_recovery.restorer.copying import PipedCopy, restore_one, sync_folders
from omni_recovery.restorer.items import RestoredFile
from omni_recovery.restorer.jobs import FileJob
from omni_recovery.restorer.sources import Buffers, Sources
from omni_recovery.targets.driver import TargetRoot

__all__ = ["BATCH_FILES", "MAX_PARALLEL", "PIPED_MIN_SIZE", "auto_parallel", "restore_batch", "run_parallel"]

MAX_PARALLEL = 4
# With parallel > 1, files this large (and every chunked file) are copied by one thread while
# another hashes them (see restorer.copying.PipedCopy).
PIPED_MIN_SIZE = 32 << 20
# Smaller files go to the pool in batches of at most this many files or bytes; with fsync on,
# each folder of a batch is fsynced once, after the batch's renames and before they are reported.
BATCH_FILES = 32
BATCH_BYTES = 8 << 20


def auto_parallel() -> int:
    """Worker threads for a restore: the CPUs this process may run on, 1 to MAX_PARALLEL.

    Measured on the project's 2-CPU machines (2 GiB, mostly one chunked file): two threads took
    1.3 s where one took 2.2-2.6 s; with the other CPU kept busy by another process, 2.1-2.9 s
    against 2.2-3.0 s, so a second thread does not hurt when the machine is loaded.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_PARALLEL, cpus))


_Outcome = tuple[list[RestoredFile], BaseException | None]


def restore_batch(
    jobs: list[FileJob],
    target: TargetRoot,
    sources: Sources,
    buffers: Buffers,
    data_key: DataKey | None,
    settler: FileSettler | None = None,
) -> _Outcome:
    """Restore small files one after the other (given their metadata before their rename by `settler`,
    if any); the files done before a failure are still reported."""
    done: list[RestoredFile] = []
    failure: Exception | None = None
    for job in jobs:
        settle = None if settler is None else partial(settler.settle, job.parts[0].metadata, job.mtime_ns)
        try:
            done.append(restore_one(job, target, sources, buffers, data_key, settle))
        except Exception as exc:
            failure = exc
            break
    try:
        sync_folders(target, done)
    except Exception as exc:
        return [], failure or exc
    return done, failure


def _verify_pipe(pipe: PipedCopy, copying: Future[None]) -> _Outcome:
    try:
        return [pipe.verify(copying)], None
    except Exception as exc:
        return [], exc


def run_parallel(
    todo: list[FileJob],
    parallel: int,
    finished: Callable[[RestoredFile], None],
    target: TargetRoot,
    sources: Sources,
    buffers: Buffers,
    data_key: DataKey | None,
    settler: FileSettler | None = None,
) -> None:
    """Restore `todo` on a thread pool (`parallel` times the target's threads_per_parallel threads), a
    few tasks queued ahead; results reported from this thread.

    Small files go in batches (of BATCH_FILES files or BATCH_BYTES bytes) to keep the cost of a
    task per file low. Chunked files and files of PIPED_MIN_SIZE or more are copied by a task of
    this pool and hashed by a task of a second pool (`PipedCopy`), which reports them.
    On the first failure nothing new starts; tasks already running finish (a file they
    complete is whole and verified), unfinished temporary files are removed, and the failure
    is raised.
    """
    pending: set[Future[_Outcome]] = set()
    pipes: list[PipedCopy] = []
    piped: set[Future[_Outcome]] = set()  # each holds a ring of buffers: at most `parallel` * 4 at once
    threads = parallel * target.threads_per_parallel
    window = threads * 4
    pool = ThreadPoolExecutor(threads, thread_name_prefix="omni-restore")
    hashers = ThreadPoolExecutor(threads, thread_name_prefix="omni-hash")
    batch: list[FileJob] = []
    batch_bytes = 0
    try:
        for job in todo:
            # A sealed file is decrypted in order, by one task.
            if job.parts[0].encryption is None and (job.chunked or job.size >= PIPED_MIN_SIZE):
                pipe = PipedCopy(job, target, sources)
                pipes.append(pipe)
                verified = hashers.submit(_verify_pipe, pipe, pool.submit(pipe.copy))
                pending.add(verified)
                piped.add(verified)
            else:
                batch.append(job)
                batch_bytes += job.size
                if len(batch) < BATCH_FILES and batch_bytes < BATCH_BYTES:
                    continue
                pending.add(pool.submit(restore_batch, batch, target, sources, buffers, data_key, settler))
                batch, batch_bytes = [], 0
            while len(pending) >= window or len(piped & pending) >= parallel * 4:
                pending = _drain(pending, finished)
        if batch:
            pending.add(pool.submit(restore_batch, batch, target, sources, buffers, data_key, settler))
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
