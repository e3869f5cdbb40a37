"""ISO 9660 directory records: the entries of one directory extent, read defensively.

`DirectoryRecords` holds what the tree walk of `backupset.isofs.IsoImage` needs below the volume
descriptors: bounds-checked reads of the image, each directory extent parsed lazily in place with
``struct.unpack_from`` into `IsoEntry`s, names taken as the backup format asks (the Rock Ridge
``NM`` name when the image has Rock Ridge, else the Joliet name when the Joliet tree is walked,
else the ISO 9660 identifier without its ``;N`` version and trailing ``.``), continuation areas
read through a small cache of blocks (writers pack many areas per block). Multi-extent files
(flag bit 7) become one entry with several extents. A record that overruns its directory, an
extent outside the image, an unsafe or duplicate name, a device, FIFO or socket, an interleaved
file or a path longer than 8192 characters is refused, naming the ISO and path.
"""

from __future__ import annotations

import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Final

from omni_recovery.backupset.rockridge import date7, rock_ridge_fields
from omni_recovery.errors import BackupSetError, UnsafePathError

__all__ = ["DR", "DR_MIN", "FLAG_DIRECTORY", "Child", "DirectoryRecords", "IsoEntry"]

_MAX_CE_LENGTH: Final = 1 << 20
_MAX_PATH_CHARS: Final = 8192
_CE_CACHE_BLOCKS: Final = 32

# Directory record: length, extended attribute length, extent (LE), data length (LE),
# date (6 unsigned bytes + signed offset), flags, file unit size, interleave gap, name length.
DR: Final = struct.Struct("<BBI4xI4x6BbBBB4xB")
DR_MIN: Final = 34
FLAG_DIRECTORY: Final = 0x02
_FLAG_ASSOCIATED: Final = 0x04
_FLAG_MULTI_EXTENT: Final = 0x80

# (entry, directory extent as (byte offset, length) or None); length -1 = read it from ".".
Child = tuple["IsoEntry", tuple[int, int] | None]


@dataclass(frozen=True, slots=True)
class IsoEntry:
    """One file, directory or symbolic link of an ISO, as recorded in its directory tree."""

    path: str
    """Relative POSIX path, e.g. ``data/volumes/app/vol/files/a.txt``; no leading ``/``."""
    type: str
    """``file``, ``dir`` or ``symlink``."""
    size: int
    """Data length in bytes (sum over all extents); 0 for ``dir`` and ``symlink``."""
    offset: int
    """Byte offset of the first extent in the image (of the directory's records for a ``dir``)."""
    extents: tuple[tuple[int, int], ...]
    """(byte offset, length) of every data extent in order; empty for ``dir`` and ``symlink``."""
    mode: int | None
    """POSIX ``st_mode`` from Rock Ridge ``PX``; None without Rock Ridge."""
    mtime: datetime | None
    """Rock Ridge ``TF`` modify time, else the directory record's date; UTC aware."""
    symlink_target: str | None
    """Rock Ridge ``SL`` target, components joined with ``/``, for ``symlink`` entries."""
    name_source: str
    """``rock_ridge``, ``joliet`` or ``iso9660``: where the name came from."""
    iso9660_name: str
    """The identifier as recorded in the tree walked (with ``;1`` if present)."""


class DirectoryRecords:
    """An ISO image's bytes and directory records; `IsoImage` reads its volume descriptors."""

    block_size: int
    has_rock_ridge: bool
    _walks_joliet: bool
    _su_skip: int  # bytes the SUSP SP entry says to skip in each record's system use area

    def __init__(self, fp: BinaryIO, *, name: str) -> None:
        self.name = name
        self._fp = fp
        self._ce_cache: dict[int, bytes] = {}
        fp.seek(0, 2)
        self.size: int = fp.tell()

    def _read_at(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes at `offset`; fewer only at the end of the file."""
        fp = self._fp
        fp.seek(offset)
        data = fp.read(length)
        if len(data) < length:
            parts = [data]
            got = len(data)
            while got < length:
                more = fp.read(length - got)
                if not more:
                    break
                parts.append(more)
                got += len(more)
            data = b"".join(parts)
        return data

    def _directory_extent(self, location: tuple[int, int], path: str) -> tuple[int, int]:
        """A directory's (byte offset, length); a relocated one's length is read from its "."."""
        offset, size = location
        if size < 0:
            head = self._read_at(offset, DR_MIN)
            if len(head) < DR_MIN or head[0] < DR_MIN or head[32] != 1 or head[33] != 0:
                raise BackupSetError(
                    "a Rock Ridge child link does not point at a directory", iso=self.name, path=path
                )
            size = DR.unpack_from(head, 0)[3]
        if size == 0 or offset + size > self.size:
            raise BackupSetError(
                f"directory extent (bytes {offset}..{offset + size}) lies outside the image "
                f"of {self.size} bytes",
                iso=self.name,
                path=path,
            )
        return offset, size

    def _continuation(self, ce: tuple[int, int, int], path: str) -> bytes:
        """The bytes of one SUSP continuation area, bounds-checked against the image."""
        block, offset, length = ce
        bs = self.block_size
        start = block * bs + offset
        if length > _MAX_CE_LENGTH or start + length > self.size:
            raise BackupSetError(
                f"a Rock Ridge continuation area (bytes {start}..{start + length}) lies outside the image",
                iso=self.name,
                path=path,
            )
        if offset + length <= bs:  # within one block: writers pack many areas per block
            cached = self._ce_cache.get(block)
            if cached is None:
                cached = self._read_at(block * bs, bs)
                if len(self._ce_cache) >= _CE_CACHE_BLOCKS:
                    del self._ce_cache[next(iter(self._ce_cache))]
                self._ce_cache[block] = cached
            data = cached[offset : offset + length]
        else:
            data = self._read_at(start, length)
        if len(data) != length:
            raise BackupSetError("image is truncated inside a continuation area", iso=self.name, path=path)
        return data

    def _children(self, location: tuple[int, int], dir_path: str) -> Iterator[Child | None]:
        """Parse one directory extent lazily; yields None for each relocated (RE) entry."""
        iso = self.name
        where = dir_path or "/"
        offset, size = location
        data = self._read_at(offset, size)
        if len(data) != size:
            raise BackupSetError("image is truncated inside a directory", iso=iso, path=where)
        bs = self.block_size
        rock_ridge = self.has_rock_ridge
        joliet = self._walks_joliet
        skip = self._su_skip
        prefix = dir_path + "/" if dir_path else ""
        seen: set[str] = set()
        # A multi-extent file in progress: (identifier, first entry, extents).
        pending: tuple[bytes, IsoEntry, list[tuple[int, int]]] | None = None
        unpack = DR.unpack_from
        pos = 0
        while pos < size:
            length = data[pos]
            if length == 0:  # records never cross a block: the rest of this block is padding
                pos = (pos // bs + 1) * bs
                continue
            if length < DR_MIN or pos + length > size:
                raise BackupSetError(
                    f"directory record at byte {offset + pos} has length {length}, overrunning its directory",
                    iso=iso,
                    path=where,
                )
            (_, xattr, block, data_length, year, month, day, hour, minute, second, tz, flags,
             unit_size, gap, name_length) = unpack(data, pos)  # fmt: skip
            name_end = pos + 33 + name_length
            if name_length == 0 or name_end > pos + length:
                raise BackupSetError(
                    f"directory record at byte {offset + pos} has a name overrunning the record",
                    iso=iso,
                    path=where,
                )
            identifier = data[pos + 33 : name_end]
            if name_length == 1 and identifier in (b"\x00", b"\x01"):
                pos += length
                continue  # "." and ".."
            if flags & _FLAG_ASSOCIATED:
                pos += length
                continue  # associated files (resource forks) are not part of the POSIX tree
            if unit_size or gap:
                raise BackupSetError(
                    "interleaved files are not supported", iso=iso, path=prefix + _latin(identifier)
                )

            name: str | None = None
            source = "iso9660"
            mode: int | None = None
            target: str | None = None
            mtime: datetime | None = None
            child_link: int | None = None
            if rock_ridge:
                su_start = name_end + (0 if name_length & 1 else 1) + skip
                raw_name, mode, target, mtime, child_link, relocated = rock_ridge_fields(
                    data, su_start, pos + length, where, iso=iso, continuation=self._continuation
                )
                if relocated:
                    pos += length
                    yield None
                    continue
                if raw_name is not None:
                    try:
                        name = raw_name.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise UnsafePathError(
                            f"Rock Ridge name {raw_name!r} is not UTF-8", iso=iso, path=where
                        ) from exc
                    source = "rock_ridge"
            if joliet:
                if name_length & 1:
                    raise BackupSetError(
                        f"Joliet name of odd length at byte {offset + pos}", iso=iso, path=where
                    )
                try:
                    recorded = identifier.decode("utf-16-be")
                except UnicodeDecodeError as exc:
                    raise UnsafePathError(
                        f"Joliet name {identifier!r} is not UCS-2", iso=iso, path=where
                    ) from exc
                stem, semicolon, version = recorded.rpartition(";")
                name = stem if semicolon and version.isdigit() else recorded
                source = "joliet"
            else:
                recorded = _text(identifier)
                if name is None:
                    stem, semicolon, version = recorded.rpartition(";")
                    name = stem if semicolon and version.isdigit() else recorded
                    if name.endswith(".") and not flags & FLAG_DIRECTORY:
                        name = name[:-1]
                    source = "iso9660"

            path = prefix + name
            if not name or name in (".", "..") or "/" in name or "\x00" in name or "\\" in name:
                raise UnsafePathError(f"unsafe name {name!r} in the image", iso=iso, path=where)
            if len(path) > _MAX_PATH_CHARS:
                raise UnsafePathError(f"path longer than {_MAX_PATH_CHARS} characters", iso=iso, path=where)
            if mtime is None:
                mtime = date7(year, month, day, hour, minute, second, tz)
            extent_offset = (block + xattr) * bs

            if pending is not None:  # the next part of a multi-extent file
                pending_id, first, extents = pending
                if identifier != pending_id or flags & FLAG_DIRECTORY:
                    raise BackupSetError(
                        "a multi-extent file is not continued by a record of the same name",
                        iso=iso,
                        path=first.path,
                    )
                extents.append(self._data_extent(extent_offset, data_length, first.path))
                if flags & _FLAG_MULTI_EXTENT:
                    pos += length
                    continue
                pending = None
                total = sum(part[1] for part in extents)
                entry = IsoEntry(
                    first.path, "file", total, extents[0][0], tuple(extents), first.mode, first.mtime,
                    None, first.name_source, first.iso9660_name,
                )  # fmt: skip
                yield self._unique(entry, seen, None)
                pos += length
                continue

            is_dir = bool(flags & FLAG_DIRECTORY) or child_link is not None
            is_link = target is not None or (mode is not None and stat.S_ISLNK(mode))
            if mode is not None and not is_link:
                kind = stat.S_IFMT(mode)
                if kind not in (stat.S_IFREG, stat.S_IFDIR) or (kind == stat.S_IFDIR) != is_dir:
                    raise BackupSetError(
                        f"Rock Ridge mode {mode:o} does not describe a regular file or directory "
                        f"matching the record",
                        iso=iso,
                        path=path,
                    )
            if is_link:
                if is_dir or target is None:
                    raise BackupSetError(
                        "malformed symbolic link (a directory, or no SL target)", iso=iso, path=path
                    )
                entry = IsoEntry(path, "symlink", 0, extent_offset, (), mode, mtime, target, source, recorded)
                yield self._unique(entry, seen, None)
            elif is_dir:
                if flags & _FLAG_MULTI_EXTENT:
                    raise BackupSetError("a directory record claims several extents", iso=iso, path=path)
                if child_link is not None:
                    extent_offset = child_link * bs
                    child: tuple[int, int] = (extent_offset, -1)
                else:
                    child = (extent_offset, data_length)
                entry = IsoEntry(path, "dir", 0, extent_offset, (), mode, mtime, None, source, recorded)
                yield self._unique(entry, seen, child)
            else:
                extent = self._data_extent(extent_offset, data_length, path)
                entry = IsoEntry(
                    path, "file", data_length, extent_offset, (extent,), mode, mtime, None, source, recorded
                )
                if flags & _FLAG_MULTI_EXTENT:
                    pending = (identifier, entry, [extent])
                else:
                    yield self._unique(entry, seen, None)
            pos += length
        if pending is not None:
            raise BackupSetError(
                "a multi-extent file's last extent is missing", iso=iso, path=pending[1].path
            )

    def _unique(self, entry: IsoEntry, seen: set[str], child: tuple[int, int] | None) -> Child:
        name = entry.path.rpartition("/")[2]
        if name in seen:
            raise BackupSetError(
                "two entries of the same name in one directory", iso=self.name, path=entry.path
            )
        seen.add(name)
        return entry, child

    def _data_extent(self, offset: int, length: int, path: str) -> tuple[int, int]:
        if length and offset + length > self.size:
            raise BackupSetError(
                f"file data (bytes {offset}..{offset + length}) lies outside the image of {self.size} bytes",
                iso=self.name,
                path=path,
            )
        return offset, length


def _latin(raw: bytes) -> str:
    return raw.decode("latin-1")


def _text(raw: bytes) -> str:
    """An ISO 9660 identifier as text: UTF-8 where it is valid, else Latin-1 (never fails)."""
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
