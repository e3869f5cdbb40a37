"""Reading the stored bytes of restore items from their ISOs, shared by every worker thread.

Each ISO is opened once (`backupset.extents.ExtentReader`: a local file read with `os.preadv`,
other fsspec URLs through one locked file object) and read into page-aligned buffers, one per
thread (`Buffers`), or, from a local image into a local file, copied by the kernel (`send_into`).
Every read counts toward progress (`Copied`: a big file is reported every PROGRESS_BYTES, not
only when whole) and stops the restore past its deadline (DeadlineExceeded) or once it is
cancelled (Interrupted). An image that records fewer bytes than the manifest says
raises IntegrityError; one that cannot be opened, BackupSetError.
"""

from __future__ import annotations

import mmap
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

from omni_recovery.backupset.extents import ExtentReader, Sink
from omni_recovery.errors import BackupSetError, DeadlineExceeded, IntegrityError, Interrupted
from omni_recovery.restorer.items import RestoreItem

__all__ = ["PROGRESS_BYTES", "Buffers", "Copied", "Progress", "Sources"]

# A file this far along is reported as progress before it is finished (a big file would otherwise
# show nothing for minutes).
PROGRESS_BYTES = 64 << 20

Progress = Callable[[str, int], None]


class Copied:
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


class Sources:
    """Each ISO opened once (an `ExtentReader`) and shared by every worker thread; reads stop at the
    deadline (a `time.monotonic()` value) or when `cancelled` is set, if given."""

    def __init__(
        self,
        deadline: float | None = None,
        cancelled: threading.Event | None = None,
        copied: Copied | None = None,
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
        reader = self.get(item)
        for offset, filled, take in _spans(item, start, len(block)):
            with block[filled : filled + take] as part:
                reader.read_into(part, offset, item.stored_path)
        self._after_read(item, len(block))

    def local(self, item: RestoreItem) -> bool:
        """Whether `item`'s image is a local file, which `send_into` can copy from."""
        return self.get(item).local

    def send_into(self, item: RestoreItem, start: int, length: int, out: Sink) -> None:
        """Append the `length` stored bytes of `item` from `start` (in the file, across sections) to
        `out`, copied by the kernel (`ExtentReader.send_to`); for a local image only."""
        reader = self.get(item)
        for offset, _, take in _spans(item, start, length):
            reader.send_to(out, offset, take, item.stored_path)
        self._after_read(item, length)

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


def _spans(item: RestoreItem, start: int, length: int) -> Iterator[tuple[int, int, int]]:
    """Where the `length` bytes of `item` from `start` (in the file) lie in its image, across its
    sections: (offset in the image, bytes of the range before it, bytes there), in order."""
    done = 0
    for offset, size in _sections(item):
        if start >= size:
            start -= size
            continue
        take = min(size - start, length - done)
        yield offset + start, done, take
        done, start = done + take, 0
        if done == length:
            return


class Buffers(threading.local):
    """One page-aligned buffer per worker thread (threading.local runs __init__ in every thread)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.view: memoryview | None = None

    def get(self) -> memoryview:
        if self.view is None:
            self.view = memoryview(mmap.mmap(-1, self.size))
        return self.view
