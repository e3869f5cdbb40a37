"""A streaming, defensive reader of ISO 9660 directories (with Rock Ridge and Joliet).

`IsoImage` reads the volume descriptors (from sector 16 up to the set terminator), takes the
primary volume descriptor and, when present, the Joliet supplementary descriptor (escape
sequence ``%/@``, ``%/C`` or ``%/E``), and looks at the first record of the root directory for
the SUSP ``SP`` entry and a Rock Ridge ``ER`` (or ``RR``/``PX``) entry (backupset.rockridge);
the tree it walks follows from that (backupset.iso_records takes each entry's name).

`IsoImage.walk` goes depth first with an explicit stack of one lazy record parser per open
directory, so memory is bounded by the depth times one directory's records (plus one integer per
directory seen, for loop detection). A ``CL`` record is walked as the directory at its child
link, an ``RE`` record is skipped where it really lies, and the writer's relocation folder,
which then holds nothing else, is not listed. Every entry records the byte ranges of its data
(``extents``), read with `IsoImage.iter_chunks` or `IsoImage.read_bytes`.

The image is untrusted input: anything that does not add up is refused with `BackupSetError`
(or `UnsafePathError` for a bad name) naming the ISO and, where known, the path: a missing
primary descriptor, no terminator within the first 64 descriptors, a sector without ``CD001``,
an image shorter than its volume descriptor says, a directory reached twice (a loop); reading
file data never trusts sizes alone (a short read raises `IntegrityError`). Symbolic links are
reported, never followed. Only the little-endian halves of both-endian fields are used. One
`IsoImage` owns one file position: it is not for several threads at once.
"""

from __future__ import annotations

import posixpath
import struct
from collections.abc import Iterator
from types import TracebackType
from typing import BinaryIO, Final

from omni_recovery.backupset.iso_records import DR, DR_MIN, FLAG_DIRECTORY, Child, DirectoryRecords, IsoEntry
from omni_recovery.backupset.rockridge import names_rock_ridge
from omni_recovery.errors import BackupSetError, IntegrityError, UnsafePathError

__all__ = ["SECTOR", "IsoEntry", "IsoImage"]

SECTOR: Final = 2048  # volume descriptors are always 2048-byte sectors
_FIRST_VD_SECTOR: Final = 16
_MAX_VOLUME_DESCRIPTORS: Final = 64
_JOLIET_ESCAPES: Final = (b"%/@", b"%/C", b"%/E")
_U32: Final = struct.Struct("<I")
_END: Final = object()


class IsoImage(DirectoryRecords):
    """One opened ISO image read from a binary file object (seekable)."""

    def __init__(self, fp: BinaryIO, *, name: str) -> None:
        super().__init__(fp, name=name)
        self._owned: BinaryIO | None = None
        primary: bytes | None = None
        joliet: bytes | None = None
        for index in range(_MAX_VOLUME_DESCRIPTORS):
            sector_no = _FIRST_VD_SECTOR + index
            sector = self._read_at(sector_no * SECTOR, SECTOR)
            if len(sector) < SECTOR:
                raise BackupSetError(
                    f"image is truncated or not an ISO: volume descriptor sector {sector_no} "
                    f"is missing ({self.size} bytes in the file)",
                    iso=name,
                )
            if sector[1:6] != b"CD001":
                raise BackupSetError(
                    f"not an ISO 9660 image: volume descriptor sector {sector_no} lacks 'CD001'", iso=name
                )
            kind = sector[0]
            if kind == 255:
                break
            if kind == 1 and primary is None:
                primary = sector
            elif kind == 2 and joliet is None and sector[88:91] in _JOLIET_ESCAPES:
                joliet = sector
        else:
            raise BackupSetError(
                f"no volume descriptor set terminator within {_MAX_VOLUME_DESCRIPTORS} sectors", iso=name
            )
        if primary is None:
            raise BackupSetError("no primary volume descriptor", iso=name)

        self.block_size: int = _U32.unpack_from(primary, 128)[0] & 0xFFFF
        if self.block_size not in (512, 1024, 2048):
            raise BackupSetError(f"unsupported logical block size {self.block_size}", iso=name)
        declared = (_U32.unpack_from(primary, 80)[0]) * self.block_size
        if declared > self.size:
            raise BackupSetError(
                f"image is truncated: its volume descriptor declares {declared} bytes, "
                f"the file holds {self.size}",
                iso=name,
            )
        self._primary_root = self._root_location(primary, "primary")
        self._joliet_root = self._root_location(joliet, "Joliet") if joliet is not None else None
        self.has_joliet: bool = joliet is not None
        self._su_skip = 0
        self.has_rock_ridge: bool = self._detect_rock_ridge()
        self._walks_joliet = not self.has_rock_ridge and self._joliet_root is not None

    # -- opening and closing -------------------------------------------------------------

    @classmethod
    def open(cls, path: str) -> IsoImage:
        """Open a local path or any fsspec URL; close it with `close` or a ``with`` block."""
        import fsspec  # imported here: the reader itself needs only the standard library

        name = posixpath.basename(path.rstrip("/")) or path
        try:
            fp: BinaryIO = fsspec.open(path, "rb").open()
        except (OSError, ValueError) as exc:
            raise BackupSetError(f"cannot open the image: {exc}", iso=name) from exc
        try:
            image = cls(fp, name=name)
        except BaseException:
            fp.close()
            raise
        image._owned = fp
        return image

    def close(self) -> None:
        """Close the file if `open` opened it (a file object given to the constructor stays open)."""
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> IsoImage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"IsoImage({self.name!r}, size={self.size}, rock_ridge={self.has_rock_ridge}, "
            f"joliet={self.has_joliet})"
        )

    # -- the tree ------------------------------------------------------------------------

    def walk(self) -> Iterator[IsoEntry]:
        """Every entry except the root, depth first, each directory before its contents."""
        root = self._tree_root()
        visited = {root[0]}
        stack: list[Iterator[Child | None]] = [self._children(root, "")]
        while stack:
            child = next(stack[-1], _END)
            if child is _END:
                stack.pop()
                continue
            if child is None:  # a relocated directory, listed where its CL record is
                continue
            assert isinstance(child, tuple)
            entry, location = child
            if location is None:
                yield entry
                continue
            location = self._directory_extent(location, entry.path)
            if location[0] in visited:
                raise BackupSetError(
                    "directory loop: this directory's extent was already visited",
                    iso=self.name,
                    path=entry.path,
                )
            visited.add(location[0])
            contents = self._children(location, entry.path)
            relocated = 0
            first: Child | None = None
            for item in contents:
                if item is None:
                    relocated += 1
                    continue
                first = item
                break
            if first is None and relocated:
                continue  # the writer's relocation folder (rr_moved): holds only relocated dirs
            yield entry
            if first is not None:
                stack.append(_prepend(first, contents))

    def find(self, path: str) -> IsoEntry:
        """The entry at `path`, reading only the directories on the way to it."""
        segments = path.split("/")
        if not path or any(segment in ("", ".", "..") for segment in segments):
            raise UnsafePathError("not a clean relative path", iso=self.name, path=path)
        location = self._tree_root()
        visited = {location[0]}
        current = ""
        for depth, segment in enumerate(segments):
            found: Child | None = None
            for item in self._children(location, current):
                if item is not None and posixpath.basename(item[0].path) == segment:
                    found = item
                    break
            if found is None:
                raise BackupSetError("no such file or directory in the image", iso=self.name, path=path)
            entry, child_location = found
            if depth == len(segments) - 1:
                return entry
            if entry.type == "symlink":
                raise BackupSetError(
                    f"{entry.path!r} is a symbolic link; links are not followed", iso=self.name, path=path
                )
            if child_location is None:
                raise BackupSetError("no such file or directory in the image", iso=self.name, path=path)
            location = self._directory_extent(child_location, entry.path)
            if location[0] in visited:
                raise BackupSetError("directory loop", iso=self.name, path=entry.path)
            visited.add(location[0])
            current = entry.path
        raise AssertionError("unreachable")  # pragma: no cover

    # -- file data -----------------------------------------------------------------------

    def read_bytes(self, entry: IsoEntry, *, limit: int = 64 * 1024 * 1024) -> bytes:
        """The whole content of a file entry, refused when it is larger than `limit` bytes."""
        self._check_file(entry)
        if entry.size > limit:
            raise BackupSetError(
                f"file is {entry.size} bytes, more than the {limit} bytes allowed here",
                iso=self.name,
                path=entry.path,
            )
        parts = []
        for offset, length in entry.extents:
            data = self._read_at(offset, length)
            if len(data) != length:
                raise IntegrityError(
                    f"short read: {len(data)} of {length} bytes at offset {offset}",
                    iso=self.name,
                    path=entry.path,
                )
            parts.append(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def iter_chunks(self, entry: IsoEntry, block_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream a file entry's bytes across its extents, at most `block_size` bytes a chunk."""
        if block_size <= 0:
            raise ValueError("block_size must be positive")
        self._check_file(entry)
        for offset, length in entry.extents:
            position, remaining = offset, length
            while remaining > 0:
                want = min(block_size, remaining)
                data = self._read_at(position, want)
                if len(data) != want:
                    raise IntegrityError(
                        f"short read: {len(data)} of {want} bytes at offset {position}",
                        iso=self.name,
                        path=entry.path,
                    )
                yield data
                position += want
                remaining -= want

    def _check_file(self, entry: IsoEntry) -> None:
        if entry.type != "file":
            raise BackupSetError(f"not a regular file but a {entry.type}", iso=self.name, path=entry.path)
        for offset, length in entry.extents:
            if offset < 0 or length < 0 or offset + length > self.size:
                raise BackupSetError("file data lies outside the image", iso=self.name, path=entry.path)

    # -- internals -----------------------------------------------------------------------

    def _root_location(self, descriptor: bytes, which: str) -> tuple[int, int]:
        fields = DR.unpack_from(descriptor, 156)
        length, xattr, block, size = fields[0], fields[1], fields[2], fields[3]
        if length < DR_MIN or not fields[11] & FLAG_DIRECTORY:
            raise BackupSetError(f"the {which} volume descriptor's root record is malformed", iso=self.name)
        offset = (block + xattr) * self.block_size
        if size == 0 or offset + size > self.size:
            raise BackupSetError(
                f"the {which} root directory (bytes {offset}..{offset + size}) lies outside the image "
                f"of {self.size} bytes",
                iso=self.name,
            )
        return offset, size

    def _detect_rock_ridge(self) -> bool:
        """Rock Ridge is present when the root's "." record starts with SUSP SP and names RRIP."""
        offset, size = self._primary_root
        record = self._read_at(offset, min(size, 255))
        if len(record) < DR_MIN or record[0] < DR_MIN or record[0] > len(record):
            raise BackupSetError("the root directory's first record is malformed", iso=self.name, path="/")
        end = record[0]
        if record[32] != 1 or record[33] != 0:
            raise BackupSetError("the root directory does not start with its '.' record", iso=self.name)
        start = 34  # 33 + one name byte; odd length, so no padding byte
        if record[start + 6 : start + 8] == b"XA":
            start += 14  # a CD-ROM XA record comes first (as pycdlib and mkisofs write it)
        if (
            end - start < 7
            or record[start : start + 2] != b"SP"
            or record[start + 4 : start + 6] != b"\xbe\xef"
        ):
            return False
        skip = record[start + 6]
        found = names_rock_ridge(record, start, end, iso=self.name, continuation=self._continuation)
        if found:
            self._su_skip = skip
        return found

    def _tree_root(self) -> tuple[int, int]:
        if self._walks_joliet and self._joliet_root is not None:
            return self._joliet_root
        return self._primary_root


def _prepend(first: Child, rest: Iterator[Child | None]) -> Iterator[Child | None]:
    yield first
    yield from rest
