"""Assembling one ISO 9660 image with Rock Ridge 1.09 and Joliet through pycdlib, streamed to a file.

Files on disk are added by name (pycdlib opens them only while writing the image, so a set of
many files never holds many descriptors); parts of a chunked file are windows onto the big file
read with `os.pread`; metadata documents are small byte strings. Parent directories are made
on demand with unique ISO 9660 and Joliet identifiers (see names.py); the real name is the Rock
Ridge one. Interchange level 4 keeps deep trees in place instead of relocating them.
"""

from __future__ import annotations

import bisect
import io
import itertools
import os
import posixpath
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, cast

import pycdlib
from pycdlib.dr import DirectoryRecord

from omni_recovery.backupset.names import DirectoryNames

WRITE_BLOCK = 1 << 20
DIR_MODE = 0o40755


class FileWindow(io.RawIOBase):
    """A read-only view of byte ranges of a file, concatenated: one range for a part of a chunked
    file, the data ranges of a sparse file."""

    def __init__(self, path: Path, ranges: Sequence[tuple[int, int]]) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY)
        self._ranges = list(ranges)
        self._starts = list(itertools.accumulate((length for _, length in self._ranges), initial=0))
        self._length, self._pos = self._starts[-1], 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._length}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        left = self._length - self._pos
        size = left if size < 0 else min(size, left)
        if size <= 0:
            return b""
        pieces = []
        while size > 0:  # whole reads across ranges: pycdlib takes a short read for the end of a file
            index = bisect.bisect_right(self._starts, self._pos) - 1
            within = self._pos - self._starts[index]
            offset, length = self._ranges[index]
            data = os.pread(self._fd, min(size, length - within), offset + within)
            if not data:
                break
            pieces.append(data)
            self._pos += len(data)
            size -= len(data)
        return b"".join(pieces)

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


class IsoBuilder:
    """Collects the entries of one image, then writes it in one streaming pass."""

    def __init__(self, volume_id: str) -> None:
        self._iso = pycdlib.PyCdlib()
        self._closed = False
        self._iso.new(
            interchange_level=4,
            joliet=3,
            rock_ridge="1.09",
            vol_ident=volume_id[:16],
            app_ident_str="omni-recovery",
        )
        # Real directory path -> (iso path, joliet path, names of its children).
        self._dirs: dict[str, tuple[str, str, DirectoryNames]] = {"": ("", "", DirectoryNames())}
        self._open: list[BinaryIO | io.RawIOBase] = []
        self._iso_paths: dict[str, str] = {}  # real path of a file or symlink -> its ISO 9660 path
        self._owners: list[tuple[str, int, int, int | None]] = []  # set_owner's, applied by write

    def add_directory(self, path: str, mode: int = DIR_MODE) -> None:
        if path not in self._dirs:
            self._directory(path, mode)

    def add_file(self, path: str, source: Path, mode: int) -> None:
        """Add a file on disk; pycdlib opens it by name only while the image is written."""
        iso_path, rr_name, joliet_path = self._child(path, is_dir=False)
        self._iso.add_file(
            str(source), iso_path=iso_path, rr_name=rr_name, joliet_path=joliet_path, file_mode=mode
        )

    def add_stream(self, path: str, fp: BinaryIO | io.RawIOBase, length: int, mode: int) -> None:
        """Add `length` bytes of `fp`, which stays open until the image is written."""
        iso_path, rr_name, joliet_path = self._child(path, is_dir=False)
        self._open.append(fp)
        self._iso.add_fp(
            cast(BinaryIO, fp),
            length,
            iso_path=iso_path,
            rr_name=rr_name,
            joliet_path=joliet_path,
            file_mode=mode,
        )

    def add_bytes(self, path: str, data: bytes, mode: int = 0o100644) -> None:
        self.add_stream(path, io.BytesIO(data), len(data), mode)

    def add_symlink(self, path: str, target: str) -> None:
        iso_path, rr_name, joliet_path = self._child(path, is_dir=False)
        self._iso.add_symlink(
            symlink_path=iso_path, rr_symlink_name=rr_name, rr_path=target, joliet_path=joliet_path
        )

    def set_owner(self, path: str, uid: int, gid: int, links: int | None = None) -> None:
        """Put a file's or folder's owner (and a file's link count) in its Rock Ridge PX entry, so
        that any ISO reader shows them; `path` must have been added already. Applied by `write`,
        once every entry is in: pycdlib lays out every extent again before a lookup that follows an
        addition, so a lookup after each addition would cost time growing with the square of the
        entries (minutes for a set of 20,000 files)."""
        self._owners.append((path, uid, gid, links))

    def _apply_owner(self, path: str, uid: int, gid: int, links: int | None) -> None:
        iso_path = self._dirs[path][0] if path in self._dirs else self._iso_paths[path]
        record = cast(DirectoryRecord, self._iso.get_record(iso_path=iso_path))
        records = [record, *(record.children[:1] if record.is_dir() else [])]  # a folder's own "." too
        for rec in records:
            entries = rec.rock_ridge.dr_entries if rec.rock_ridge is not None else None
            px = entries.px_record if entries is not None else None
            if px is None and rec.rock_ridge is not None and rec.rock_ridge.ce_entries is not None:
                px = rec.rock_ridge.ce_entries.px_record
            if px is not None:
                px.posix_user_id, px.posix_group_id = uid, gid
                if links is not None and not rec.is_dir():
                    px.posix_file_links = links

    def write(self, out: BinaryIO, progress: Callable[[int], None] | None = None) -> None:
        for owner in self._owners:
            self._apply_owner(*owner)
        self._owners.clear()
        done = 0

        def report(completed: int, total: int, opaque: object) -> None:
            nonlocal done
            if progress is not None:
                progress(completed - done)
            done = completed

        self._iso.write_fp(out, blocksize=WRITE_BLOCK, progress_cb=report if progress else None)

    def close(self) -> None:
        for fp in self._open:
            fp.close()
        self._open.clear()
        if not self._closed:
            self._closed = True
            self._iso.close()

    def _directory(self, path: str, mode: int) -> tuple[str, str, DirectoryNames]:
        parent = posixpath.dirname(path)
        parent_iso, parent_joliet, names = self._dirs.get(parent) or self._directory(parent, DIR_MODE)
        name = posixpath.basename(path)
        iso_path = f"{parent_iso}/{names.iso9660(name, is_dir=True)}"
        joliet_path = f"{parent_joliet}/{names.joliet(name)}"
        self._iso.add_directory(iso_path=iso_path, rr_name=name, joliet_path=joliet_path, file_mode=mode)
        self._dirs[path] = (iso_path, joliet_path, DirectoryNames())
        return self._dirs[path]

    def _child(self, path: str, *, is_dir: bool) -> tuple[str, str, str]:
        parent = posixpath.dirname(path)
        parent_iso, parent_joliet, names = self._dirs.get(parent) or self._directory(parent, DIR_MODE)
        name = posixpath.basename(path)
        iso_path = f"{parent_iso}/{names.iso9660(name, is_dir=is_dir)}"
        self._iso_paths[path] = iso_path
        return iso_path, name, f"{parent_joliet}/{names.joliet(name)}"
