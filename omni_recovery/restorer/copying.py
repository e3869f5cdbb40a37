"""Copying one file from the ISOs to its temporary file, hashing every byte once, then renaming it.

Each file is written to `.{name}.omni-partial` in its final folder (a chunked file's parts, from
whichever ISOs hold them, in index order into one file) and renamed onto its final name, with
its mode and mtime, only once every check has passed; on any failure it is removed. A chunked
file is checked by its job's flags: against its logical_sha256 (when that fails, the parts are
hashed again so that the error names the damaged part's ISO and path), against each part's own
sha256, or both. A sealed file is decrypted on the way and authenticated (AES-256-GCM, the
logical path as associated data), then checked against its plaintext digest and size.

A large or chunked file may be copied by one thread while another hashes the very buffers it
wrote (`PipedCopy`), so that it takes about the longer of the copy and the hash, not their sum.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager

from omni_recovery.backupset import keys
from omni_recovery.backupset.hashing import BufferRing
from omni_recovery.backupset.reader import DataKey
from omni_recovery.errors import IntegrityError, Interrupted
from omni_recovery.restorer.items import RestoredFile, RestoreItem
from omni_recovery.restorer.jobs import FileJob
from omni_recovery.restorer.sources import Buffers, Sources
from omni_recovery.restorer.sparse import SparseFile
from omni_recovery.targets.driver import PartialFile, TargetRoot

__all__ = ["DIRECT_BLOCKS", "PIPE_BLOCK", "PIPE_DEPTH", "PipedCopy", "restore_one", "sync_folders"]

# A piped file goes through PIPE_DEPTH buffers of PIPE_BLOCK bytes (see PipedCopy); copied by the
# kernel, in blocks of DIRECT_BLOCKS times that.
PIPE_BLOCK = 1 << 20
PIPE_DEPTH = 8
DIRECT_BLOCKS = 8


def _mismatch(job: FileJob, digest: str, sources: Sources, buffer: memoryview) -> IntegrityError:
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


def _part_mismatch(job: FileJob, piece: RestoreItem, digest: str) -> IntegrityError:
    return IntegrityError(
        f"sha256 is {digest}, the manifest says {piece.sha256} (restoring {job.path})",
        iso=piece.iso_name,
        path=piece.stored_path,
    )


def _copy_plain(job: FileJob, out: PartialFile | SparseFile, sources: Sources, buffer: memoryview) -> None:
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
    job: FileJob, out: PartialFile | SparseFile, sources: Sources, buffer: memoryview, data_key: DataKey
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


def _begin(target: TargetRoot, job: FileJob) -> PartialFile | SparseFile:
    return SparseFile(target, job.path, job.sparse) if job.sparse else target.begin(job.path, job.size)


def restore_one(
    job: FileJob,
    target: TargetRoot,
    sources: Sources,
    buffers: Buffers,
    data_key: DataKey | None,
    settle: Callable[[PartialFile | SparseFile], bool] | None = None,
) -> RestoredFile:
    """Copy and verify one file, then rename it into place; `settle(out)`, when it says True, gave
    the file its metadata (mode and mtime among them) through its temporary file first."""
    out = _begin(target, job)
    try:
        if job.parts[0].encryption is not None:
            assert data_key is not None
            _copy_sealed(job, out, sources, buffers.get(), data_key)
        else:
            _copy_plain(job, out, sources, buffers.get())
        settled = settle is not None and settle(out)
        out.commit(  # the caller syncs folders
            mode=None if settled else job.mode, mtime=None if settled else job.mtime, sync_folder=False
        )
    except BaseException:
        out.abort()
        raise
    return job.restored()


def sync_folders(target: TargetRoot, done: list[RestoredFile]) -> None:
    """Make the renames of `done` durable (with fsync on): each folder once, before they are reported."""
    if target.fsync and target.is_local:
        for folder in sorted({posixpath.dirname(f.path) for f in done}):
            target.fsync_folder(folder)


# (part index, buffer, bytes in it, None) or, copied by the kernel, (part index, token, bytes, offset
# in the file)
_Handed = tuple[int, memoryview, int, int | None]


class PipedCopy:
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

    From local images into a local file the kernel copies the bytes instead (os.sendfile, one
    copy where a read and a write make two), and the hashing task hashes each block where it
    was written, in one read-only mapping of the file itself: the digest is of the file's own
    bytes, and the ring's untouched buffers only bound how far the copy runs ahead.
    """

    def __init__(self, job: FileJob, target: TargetRoot, sources: Sources) -> None:
        self.job, self.sources = job, sources
        self.ring = BufferRing(PIPE_DEPTH, PIPE_BLOCK)
        self.handed: queue.Queue[_Handed | None] = queue.Queue()
        self.stop = threading.Event()
        self.out = _begin(target, job)

    def copy(self) -> None:
        try:
            direct = self._direct()
            block = PIPE_BLOCK * DIRECT_BLOCKS if direct else PIPE_BLOCK
            written = 0
            for index, piece in enumerate(self.job.parts):
                for start in range(0, piece.size, block):
                    buffer = self.ring.take_unless(self.stop)
                    if buffer is None:
                        raise Interrupted(f"stopped copying {self.job.path}")
                    length = min(block, piece.size - start)
                    if direct:
                        assert isinstance(self.out, PartialFile)
                        self.sources.send_into(piece, start, length, self.out)
                    else:
                        with buffer[:length] as view:
                            self.sources.read_into(piece, start, view)
                            self.out.write(view)
                    self.handed.put((index, buffer, length, written if direct else None))
                    written += length
        finally:
            self.handed.put(None)

    def _direct(self) -> bool:
        """Whether the kernel copies the bytes (a local file from local images), hashed from the file."""
        out = self.out
        return (
            isinstance(out, PartialFile) and out.local and all(self.sources.local(p) for p in self.job.parts)
        )

    def verify(self, copying: Future[None]) -> RestoredFile:
        job = self.job
        try:
            whole = hashlib.sha256() if job.check_whole else None
            parts = [hashlib.sha256() for _ in job.parts] if job.check_parts else None
            while (handed := self._next(copying)) is not None:
                index, buffer, length, offset = handed
                with self._block(buffer, length, offset) as block:
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
        return job.restored()

    def _block(
        self, buffer: memoryview, length: int, offset: int | None
    ) -> AbstractContextManager[memoryview]:
        """The bytes of a handed block: in its buffer, or (copied by the kernel) in the file itself."""
        if offset is None:
            return buffer[:length]
        assert isinstance(self.out, PartialFile)
        return self.out.written(offset, length, sum(p.size for p in self.job.parts))

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
