"""Writing a sparse file with its holes: stored bytes go to their data ranges, the rest stays a hole.

A sparse file's stored bytes are its data ranges concatenated (format 1.1). `SparseFile` takes
those bytes in order, as every other file's, and hands them to the target root's temporary file
(`PartialFile`, or an SSH root's) at the offset of its range: it skips over each hole (on a local
root with a seek, so the filesystem allocates nothing for it) and, when committed, sets the file's
logical size, the last hole included. A 1 GiB file with 3 small data ranges so takes, on a local
disk, only its data, as `du` shows. On a root that is not local the holes are written as zeros:
same content, full size.

What can go wrong: more stored bytes than the ranges hold raises TargetError (the restorer checks
sizes and digests first, so this means a damaged request); everything else is the root's.
"""

from __future__ import annotations

from omni_recovery.backupset.attributes import Sparse
from omni_recovery.targets.driver import PartialFile, TargetRoot


class SparseFile:
    """Stored bytes in, data ranges with holes between out, through the root's temporary file."""

    def __init__(self, root: TargetRoot, relpath: str, sparse: Sparse) -> None:
        self.root, self.relpath, self.sparse = root, relpath, sparse
        self.out: PartialFile = root.begin(relpath, sparse.logical_size)
        self._index = 0  # the range being written
        self._left = sparse.ranges[0][1] if sparse.ranges else 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data)
        while len(view):
            if self._index >= len(self.sparse.ranges):
                raise self.root.error("more bytes than the sparse file's data ranges hold", self.relpath)
            offset, length = self.sparse.ranges[self._index]
            if self._left == length:
                self.out.skip_to(offset)
            taken = min(self._left, len(view))
            self.out.write(view[:taken])
            view, self._left = view[taken:], self._left - taken
            if self._left == 0:
                self._index += 1
                self._left = (
                    self.sparse.ranges[self._index][1] if self._index < len(self.sparse.ranges) else 0
                )
        return len(data)

    def commit(
        self, *, mode: int | None = None, mtime: float | None = None, sync_folder: bool = True
    ) -> None:
        try:
            self.out.end_at(self.sparse.logical_size)
        except BaseException:
            self.out.abort()
            raise
        self.out.commit(mode=mode, mtime=mtime, sync_folder=sync_folder)

    def abort(self) -> None:
        self.out.abort()
