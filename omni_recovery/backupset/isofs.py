"""A streaming, defensive reader of ISO 9660 directories (with Rock Ridge and Joliet).

How it works
------------
`IsoImage` reads the volume descriptors (from sector 16 up to the set terminator), takes the
primary volume descriptor and, when present, the Joliet supplementary descriptor (escape
sequence ``%/@``, ``%/C`` or ``%/E``), and looks at the first record of the root directory for
the SUSP ``SP`` entry and a Rock Ridge ``ER`` (or ``RR``/``PX``) entry. Names are then taken
as the backup format asks: the Rock Ridge ``NM`` name when the image has Rock Ridge (the
primary tree is walked), else the Joliet name (the Joliet tree is walked), else the plain
ISO 9660 identifier without its ``;N`` version and trailing ``.``. (A record without ``NM`` in
a Rock Ridge image keeps its ISO 9660 name; ``name_source`` says which was used.)

`IsoImage.walk` goes depth first with an explicit stack of one lazy record parser per open
directory. Each directory extent is read with one ``read`` and parsed in place with
``struct.unpack_from``; nothing else of the tree is kept, so memory is bounded by the depth
times one directory's records (plus one integer per directory seen, for loop detection).
Every entry records the byte ranges of its data (``extents``), so later stages read file
bytes straight from the image with `IsoImage.iter_chunks` or `IsoImage.read_bytes`.

Rock Ridge entries parsed: ``NM`` (names split over several entries are joined), ``PX``
(mode; 36- and 44-byte forms), ``SL`` (symbolic link targets, with CURRENT/PARENT/ROOT
components and continuations), ``TF`` (modify time; short and long form), ``CE``
(continuation areas, followed with bounds checks), ``CL``/``RE`` (directories relocated by
the writer because they were deeper than 8 levels: a ``CL`` record is walked as the directory
at its child link, an ``RE`` record is skipped where it really lies, and the writer's
relocation folder, which then holds nothing else, is not listed). Unknown entries are
ignored. Multi-extent files (flag bit 7) become one entry with several extents.

What can go wrong
-----------------
The image is untrusted input. Anything that does not add up is refused with
`BackupSetError` (or `UnsafePathError` for a bad name) naming the ISO and, where known, the
path: a missing primary descriptor, no terminator within the first 64 descriptors, a sector
without ``CD001``; an image shorter than its volume descriptor says (truncated); a record
whose length overruns its directory; an extent, directory or continuation area outside the
image; a directory reached twice (a loop); a name that is empty, ``.``/``..``, or holds
``/``, a backslash or NUL; device, FIFO or socket entries; interleaved files; two entries of
one name in a directory; paths longer than 8192 characters. Reading file data never trusts
sizes alone: a short read raises `IntegrityError`. Symbolic links are reported, never followed.
Only the little-endian halves of both-endian fields are used. Unparseable dates become
``None`` rather than errors. One `IsoImage` owns one file position: it is not for several
threads at once.
"""

from __future__ import annotations

import functools
import posixpath
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from types import TracebackType
from typing import BinaryIO, Final

from omni_recovery.errors import BackupSetError, IntegrityError, UnsafePathError

__all__ = ["IsoEntry", "IsoImage"]

SECTOR: Final = 2048  # volume descriptors are always 2048-byte sectors
_FIRST_VD_SECTOR: Final = 16
_MAX_VOLUME_DESCRIPTORS: Final = 64
_JOLIET_ESCAPES: Final = (b"%/@", b"%/C", b"%/E")
_RRIP_IDS: Final = (b"RRIP_1991A", b"IEEE_P1282", b"IEEE_1282")
_MAX_CE_HOPS: Final = 64  # continuation areas followed for one record
_MAX_CE_LENGTH: Final = 1 << 20
_MAX_PATH_CHARS: Final = 8192
_CE_CACHE_BLOCKS: Final = 32

# Directory record: length, extended attribute length, extent (LE), data length (LE),
# date (6 unsigned bytes + signed offset), flags, file unit size, interleave gap, name length.
_DR: Final = struct.Struct("<BBI4xI4x6BbBBB4xB")
_DR_MIN: Final = 34
_SUSP_HEAD: Final = struct.Struct("<2sBB")
_U32: Final = struct.Struct("<I")
_CE_BODY: Final = struct.Struct("<I4xI4xI")
_DATE7: Final = struct.Struct("<6Bb")

_FLAG_DIRECTORY: Final = 0x02
_FLAG_ASSOCIATED: Final = 0x04
_FLAG_MULTI_EXTENT: Final = 0x80

# (entry, directory extent as (byte offset, length) or None); length -1 = read it from ".".
_Child = tuple["IsoEntry", tuple[int, int] | None]
# Parsed Rock Ridge fields of one record:
# (name bytes | None, mode | None, symlink target | None, modify time | None,
#  child link block | None, relocated?)
_RockRidge = tuple[bytes | None, int | None, str | None, datetime | None, int | None, bool]
_END: Final = object()


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


class IsoImage:
    """One opened ISO image read from a binary file object (seekable)."""

    def __init__(self, fp: BinaryIO, *, name: str) -> None:
        self.name = name
        self._fp = fp
        self._owned: BinaryIO | None = None
        self._ce_cache: dict[int, bytes] = {}
        fp.seek(0, 2)
        self.size: int = fp.tell()

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
        stack: list[Iterator[_Child | None]] = [self._children(root, "")]
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
            first: _Child | None = None
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
            found: _Child | None = None
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

    def _root_location(self, descriptor: bytes, which: str) -> tuple[int, int]:
        fields = _DR.unpack_from(descriptor, 156)
        length, xattr, block, size = fields[0], fields[1], fields[2], fields[3]
        if length < _DR_MIN or not fields[11] & _FLAG_DIRECTORY:
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
        if len(record) < _DR_MIN or record[0] < _DR_MIN or record[0] > len(record):
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
        found = False
        data, pos, hops = record, start, 0
        while True:
            ce: tuple[int, int, int] | None = None
            while end - pos >= 4:
                signature, length, _version = _SUSP_HEAD.unpack_from(data, pos)
                if length < 4 or pos + length > end:
                    raise BackupSetError(
                        "the root's SUSP entries overrun their area", iso=self.name, path="/"
                    )
                if signature == b"ER" and length >= 8:
                    id_length = data[pos + 4]
                    if data[pos + 8 : pos + 8 + id_length] in _RRIP_IDS:
                        found = True
                elif signature in (b"RR", b"PX", b"NM"):
                    found = True
                elif signature == b"CE" and length >= 28:
                    ce = _CE_BODY.unpack_from(data, pos + 4)
                elif signature == b"ST":
                    break
                pos += length
            if ce is None or found:
                break
            hops += 1
            if hops > _MAX_CE_HOPS:
                raise BackupSetError("too many chained SUSP continuation areas", iso=self.name, path="/")
            data = self._continuation(ce, "/")
            pos, end = 0, len(data)
        if found:
            self._su_skip = skip
        return found

    def _tree_root(self) -> tuple[int, int]:
        if self._walks_joliet and self._joliet_root is not None:
            return self._joliet_root
        return self._primary_root

    def _directory_extent(self, location: tuple[int, int], path: str) -> tuple[int, int]:
        """A directory's (byte offset, length); a relocated one's length is read from its "."."""
        offset, size = location
        if size < 0:
            head = self._read_at(offset, _DR_MIN)
            if len(head) < _DR_MIN or head[0] < _DR_MIN or head[32] != 1 or head[33] != 0:
                raise BackupSetError(
                    "a Rock Ridge child link does not point at a directory", iso=self.name, path=path
                )
            size = _DR.unpack_from(head, 0)[3]
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

    def _children(self, location: tuple[int, int], dir_path: str) -> Iterator[_Child | None]:
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
        unpack = _DR.unpack_from
        pos = 0
        while pos < size:
            length = data[pos]
            if length == 0:  # records never cross a block: the rest of this block is padding
                pos = (pos // bs + 1) * bs
                continue
            if length < _DR_MIN or pos + length > size:
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
                raw_name, mode, target, mtime, child_link, relocated = self._rock_ridge(
                    data, su_start, pos + length, where
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
                    if name.endswith(".") and not flags & _FLAG_DIRECTORY:
                        name = name[:-1]
                    source = "iso9660"

            path = prefix + name
            if not name or name in (".", "..") or "/" in name or "\x00" in name or "\\" in name:
                raise UnsafePathError(f"unsafe name {name!r} in the image", iso=iso, path=where)
            if len(path) > _MAX_PATH_CHARS:
                raise UnsafePathError(f"path longer than {_MAX_PATH_CHARS} characters", iso=iso, path=where)
            if mtime is None:
                mtime = _date7(year, month, day, hour, minute, second, tz)
            extent_offset = (block + xattr) * bs

            if pending is not None:  # the next part of a multi-extent file
                pending_id, first, extents = pending
                if identifier != pending_id or flags & _FLAG_DIRECTORY:
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

            is_dir = bool(flags & _FLAG_DIRECTORY) or child_link is not None
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

    def _unique(self, entry: IsoEntry, seen: set[str], child: tuple[int, int] | None) -> _Child:
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

    def _rock_ridge(self, data: bytes, pos: int, end: int, where: str) -> _RockRidge:
        """The Rock Ridge fields of one record's system use area, following CE areas."""
        iso = self.name
        name: bytes | None = None
        mode: int | None = None
        mtime: datetime | None = None
        child_link: int | None = None
        relocated = False
        components: list[bytes] | None = None
        component_continues = False
        hops = 0
        while True:
            ce: tuple[int, int, int] | None = None
            while end - pos >= 4:
                signature, length, _version = _SUSP_HEAD.unpack_from(data, pos)
                if length < 4 or pos + length > end:
                    raise BackupSetError(
                        f"a SUSP entry {signature!r} of length {length} overruns its system use area",
                        iso=iso,
                        path=where,
                    )
                if signature == b"NM":
                    if length < 5:
                        raise BackupSetError("a Rock Ridge NM entry is too short", iso=iso, path=where)
                    if data[pos + 4] & 0x06:
                        raise UnsafePathError("a Rock Ridge NM entry names '.' or '..'", iso=iso, path=where)
                    part = data[pos + 5 : pos + length]
                    name = part if name is None else name + part
                elif signature == b"PX":
                    if length < 36:
                        raise BackupSetError("a Rock Ridge PX entry is too short", iso=iso, path=where)
                    mode = _U32.unpack_from(data, pos + 4)[0]
                elif signature == b"TF":
                    modified = _tf_modify(data, pos, length)
                    if modified is not None:
                        mtime = modified
                elif signature == b"SL":
                    if components is None:
                        components = []
                    component_continues = self._sl(data, pos, length, components, component_continues, where)
                elif signature == b"CE":
                    if length < 28:
                        raise BackupSetError("a SUSP CE entry is too short", iso=iso, path=where)
                    ce = _CE_BODY.unpack_from(data, pos + 4)
                elif signature == b"CL":
                    if length < 12:
                        raise BackupSetError("a Rock Ridge CL entry is too short", iso=iso, path=where)
                    child_link = _U32.unpack_from(data, pos + 4)[0]
                elif signature == b"RE":
                    relocated = True
                elif signature == b"ST":
                    break
                pos += length
            if ce is None:
                break
            hops += 1
            if hops > _MAX_CE_HOPS:
                raise BackupSetError("too many chained Rock Ridge continuation areas", iso=iso, path=where)
            data = self._continuation(ce, where)
            pos, end = 0, len(data)

        target: str | None = None
        if components is not None:
            if not components:
                raise BackupSetError("a Rock Ridge symbolic link has no target", iso=iso, path=where)
            raw = b"/" if components == [b""] else b"/".join(components)
            try:
                target = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BackupSetError(
                    f"symbolic link target {raw!r} is not UTF-8", iso=iso, path=where
                ) from exc
        return name, mode, target, mtime, child_link, relocated

    def _sl(
        self, data: bytes, pos: int, length: int, components: list[bytes], continues: bool, where: str
    ) -> bool:
        """Add one SL entry's components; returns whether the last component continues."""
        p = pos + 5
        end = pos + length
        while p < end:
            if p + 2 > end:
                raise BackupSetError(
                    "a Rock Ridge SL component overruns its entry", iso=self.name, path=where
                )
            flags, size = data[p], data[p + 1]
            p += 2
            if p + size > end:
                raise BackupSetError(
                    "a Rock Ridge SL component overruns its entry", iso=self.name, path=where
                )
            if flags & 0x08:  # ROOT
                components.clear()
                components.append(b"")
                continues = False
                p += size
                continue
            if flags & 0x30:
                raise BackupSetError(
                    "a Rock Ridge symbolic link to the volume root or host is not supported",
                    iso=self.name,
                    path=where,
                )
            if flags & 0x02:
                piece = b"."
            elif flags & 0x04:
                piece = b".."
            else:
                piece = data[p : p + size]
                if b"/" in piece or b"\x00" in piece:
                    raise UnsafePathError(
                        f"symbolic link component {piece!r} holds '/' or NUL", iso=self.name, path=where
                    )
            if continues and components:
                components[-1] += piece
            else:
                components.append(piece)
            continues = bool(flags & 0x01)
            p += size
        return continues


def _prepend(first: _Child, rest: Iterator[_Child | None]) -> Iterator[_Child | None]:
    yield first
    yield from rest


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


@functools.lru_cache(maxsize=4096)
def _date7(year: int, month: int, day: int, hour: int, minute: int, second: int, tz: int) -> datetime | None:
    """A 7-byte directory record date as an aware UTC datetime; None when unset or invalid."""
    if not (year or month or day or hour or minute or second):
        return None
    try:
        local = datetime(
            1900 + year, month, day, hour, minute, second, tzinfo=timezone(timedelta(minutes=15 * tz))
        )
    except ValueError:
        return None
    return local.astimezone(UTC)


def _date17(raw: bytes) -> datetime | None:
    """A 17-byte volume descriptor style date (16 digits + offset); None when unset or invalid."""
    digits, tz = raw[:16], struct.unpack_from("<b", raw, 16)[0]
    if not digits.isdigit() or digits.strip(b"0") == b"":
        return None
    try:
        text = digits.decode("ascii")
        local = datetime(
            int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]),
            int(text[12:14]), int(text[14:16]) * 10000, tzinfo=timezone(timedelta(minutes=15 * tz)),
        )  # fmt: skip
    except ValueError:
        return None
    return local.astimezone(UTC)


def _tf_modify(data: bytes, pos: int, length: int) -> datetime | None:
    """The MODIFY time of a Rock Ridge TF entry (bit 1 of its flags), if recorded."""
    if length < 5:
        return None
    flags = data[pos + 4]
    if not flags & 0x02:
        return None
    each = 17 if flags & 0x80 else 7
    start = pos + 5 + (each if flags & 0x01 else 0)  # CREATION (bit 0) comes first
    if start + each > pos + length:
        return None
    if each == 7:
        return _date7(*_DATE7.unpack_from(data, start))
    return _date17(data[start : start + 17])
