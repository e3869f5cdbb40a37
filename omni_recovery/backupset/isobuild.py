"""Assembling one ISO 9660 image with Rock Ridge 1.09 and Joliet through pycdlib, streamed to a file.

Files on disk are added by name (pycdlib opens them only while writing the image, so a set of
many files never holds many descriptors); parts of a chunked file are windows onto the big file
read with `os.pread`; metadata documents are small byte strings. Parent directories are made
on demand with unique ISO 9660 and Joliet identifiers (see names.py); the real name is the Rock
Ridge one. Interchange level 4 keeps deep trees in place instead of relocating them.
"""

from __future__ import annotations

import io
import os
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, cast

import pycdlib

from omni_recovery.backupset.names import DirectoryNames

WRITE_BLOCK = 1 << 20
DIR_MODE = 0o40755


class FileWindow(io.RawIOBase):
    """A read-only view of `length` bytes of a file from `offset`, for one part of a chunked file."""

    def __init__(self, path: Path, offset: int, length: int) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY)
        self._offset, self._length, self._pos = offset, length, 0

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
        data = os.pread(self._fd, size, self._offset + self._pos)
        self._pos += len(data)
        return data

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

    def write(self, out: BinaryIO, progress: Callable[[int], None] | None = None) -> None:
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
        return iso_path, name, f"{parent_joliet}/{names.joliet(name)}"
