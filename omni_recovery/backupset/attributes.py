"""The ownership and attribute fields of format 1.1: read from a source file, written to and read
from a manifest entry.

A source file gives its owner (numbers from lstat, names from the password and group databases),
its extended attributes (POSIX ACLs among them, as `system.posix_acl_access` and
`system.posix_acl_default`), and for a regular file its data ranges (`SEEK_DATA`/`SEEK_HOLE`): a
file whose ranges do not cover it is sparse and only its ranges are stored. Hard links are told by
the writer, which knows the inodes it has met. mtimes keep their nanoseconds in RFC 3339 text.

Reading a manifest treats every field as untrusted: numbers are checked, xattr values must be
base64, a sparse file's ranges must be ordered, disjoint, inside its logical size and add up to its
stored size, and a hard link carries nothing else (no bytes, no sparse ranges); each problem
raises BackupSetError naming the ISO and the path.

What can go wrong: a filesystem without xattrs or without SEEK_DATA (EOPNOTSUPP, EINVAL) gives
no attributes and a dense file, never an error; an unreadable file raises OSError to the caller.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import errno
import grp
import os
import pwd
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omni_recovery.backupset import layout
from omni_recovery.errors import BackupSetError

Range = tuple[int, int]
_FRACTION = re.compile(r"T\d\d:\d\d:\d\d\.(\d+)", re.IGNORECASE)
_UNSUPPORTED = (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS)


@dataclass(frozen=True, slots=True)
class Sparse:
    """A file with holes: the data `ranges` ([offset, length], in order) of a `logical_size` file."""

    ranges: tuple[Range, ...]
    logical_size: int
    logical_sha256: str

    @property
    def stored_size(self) -> int:
        return sum(length for _, length in self.ranges)


@dataclass(frozen=True, slots=True)
class FileAttributes:
    """What format 1.1 adds to an entry; every field is optional."""

    uid: int | None = None
    gid: int | None = None
    user: str | None = None
    group: str | None = None
    xattrs: tuple[tuple[str, bytes], ...] = ()
    hardlink: str | None = None
    sparse: Sparse | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("uid", "gid", "user", "group", "hardlink"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.xattrs:
            out["xattrs"] = {name: base64.b64encode(value).decode("ascii") for name, value in self.xattrs}
        if self.sparse is not None:
            out["sparse"] = [list(r) for r in self.sparse.ranges]
            out["logical_size"] = self.sparse.logical_size
            out["logical_sha256"] = self.sparse.logical_sha256
        return out


# -- from a source file ---------------------------------------------------------------------


def source_attributes(path: Path, st: os.stat_result | None, kind: str) -> FileAttributes:
    """The owner of a source entry and, for files and folders, its extended attributes."""
    if st is None:
        return FileAttributes()
    xattrs = read_xattrs(path) if kind in ("file", "dir") else ()
    return dataclasses.replace(owner_of(st), xattrs=xattrs)


class FirstNames:
    """The first name met of each inode with several names: later names become hard links to it."""

    def __init__(self) -> None:
        self._seen: dict[tuple[int, int, str], str] = {}
        self._names: dict[tuple[int, int, str], int] = {}

    def first_name(self, st: os.stat_result | None, path: str, iso_kind: str) -> str | None:
        """The path stored first for the inode of `st` in ISOs of `iso_kind`, when this is a later name
        of a regular file (names in ISOs of another kind are stored again: they restore apart)."""
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_nlink < 2:
            return None
        key = (st.st_dev, st.st_ino, iso_kind)
        first = self._seen.get(key)
        if first is None:
            self._seen[key] = path
        self._names[key] = self._names.get(key, 0) + 1
        return first

    def names(self, st: os.stat_result | None, iso_kind: str) -> int:
        """How many names of the inode of `st` the set holds (its link count in the set)."""
        return self._names.get((st.st_dev, st.st_ino, iso_kind), 1) if st is not None else 1


def owner_of(st: os.stat_result) -> FileAttributes:
    """The owner of a file by number, and by name where the databases know the numbers."""
    return FileAttributes(
        st.st_uid, st.st_gid, _name(pwd.getpwuid, st.st_uid), _name(grp.getgrgid, st.st_gid)
    )


def _name(lookup: Callable[[int], Any], number: int) -> str | None:
    try:
        return str(lookup(number)[0])
    except KeyError:
        return None


def read_xattrs(path: str | os.PathLike[str]) -> tuple[tuple[str, bytes], ...]:
    """Every extended attribute of `path` (not following a symlink), sorted by name; none where the
    filesystem has none."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
        return tuple(sorted((n, os.getxattr(path, n, follow_symlinks=False)) for n in names))
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            return ()
        raise


def data_ranges(fd: int, size: int) -> list[Range]:
    """The data ranges of the open file `fd` of `size` bytes, by SEEK_DATA/SEEK_HOLE; the whole file
    as one range where the filesystem cannot tell."""
    ranges: list[Range] = []
    position = 0
    try:
        while position < size:
            start = os.lseek(fd, position, os.SEEK_DATA)
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            ranges.append((start, end - start))
            position = end
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # no data after `position`: the rest is a hole
            return ranges
        if exc.errno in _UNSUPPORTED:
            return [(0, size)] if size else []
        raise
    return ranges


def is_dense(ranges: list[Range], size: int) -> bool:
    return ranges == ([(0, size)] if size else [])


# -- mtimes with nanoseconds ------------------------------------------------------------------


def format_mtime(mtime_ns: int) -> str:
    """RFC 3339 in UTC, with nine digits of fraction when the time has any."""
    seconds, fraction = divmod(mtime_ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{fraction:09d}Z" if fraction else f"{text}Z"


def mtime_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time, keeping every digit of its fraction up to
    nine (datetime keeps six); ValueError when it is no such time."""
    whole = layout.parse_time(text).replace(microsecond=0)
    match = _FRACTION.search(text)
    fraction = int(match.group(1)[:9].ljust(9, "0")) if match else 0
    return int(whole.timestamp()) * 1_000_000_000 + fraction


# -- from a manifest entry ---------------------------------------------------------------------


def parse_attributes(
    raw: dict[str, Any], fail: Callable[[str], BackupSetError], iso: str
) -> FileAttributes | None:
    """The 1.1 fields of one manifest entry (`raw`), checked; None when it has none."""
    owner = {key: _number(raw, key, fail) for key in ("uid", "gid")}
    names = {key: _text(raw, key, fail) for key in ("user", "group")}
    xattrs = _xattrs(raw.get("xattrs"), fail)
    hardlink = _text(raw, "hardlink", fail)
    if hardlink is not None:
        layout.check_relative_path(hardlink, iso=iso)
    sparse = _sparse(raw, fail) if raw.get("sparse") is not None else None
    found = FileAttributes(
        owner["uid"], owner["gid"], names["user"], names["group"], xattrs, hardlink, sparse
    )
    return None if found == FileAttributes() else found


def sparse_problem(attributes: FileAttributes | None, size: int, *, split: bool, sealed: bool) -> str | None:
    """What is wrong with a file entry's sparse ranges given its other fields, if anything: a sparse
    file stores its data ranges concatenated, as one unsealed, unsplit file."""
    sparse = attributes.sparse if attributes else None
    if sparse is None:
        return None
    if split or sealed:
        return "a sparse file is neither split into parts nor sealed"
    if sparse.stored_size != size:
        return f"size {size} is not the {sparse.stored_size} bytes of its sparse ranges"
    return None


def _number(raw: dict[str, Any], key: str, fail: Callable[[str], BackupSetError]) -> int | None:
    value = raw.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise fail(f"{key} must be an integer >= 0, found {value!r}")
    return value


def _text(raw: dict[str, Any], key: str, fail: Callable[[str], BackupSetError]) -> str | None:
    value = raw.get(key)
    if value is not None and (not isinstance(value, str) or not value or "\x00" in value):
        raise fail(f"{key} must be non-empty text, found {value!r}")
    return value


def _xattrs(value: Any, fail: Callable[[str], BackupSetError]) -> tuple[tuple[str, bytes], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise fail("xattrs must be a mapping of attribute name to base64 value")
    found = []
    for name, encoded in value.items():
        if not name or "\x00" in name or "." not in name or not isinstance(encoded, str):
            raise fail(f"xattr {name!r} must be a namespaced name with a base64 text value")
        try:
            found.append((name, base64.b64decode(encoded, validate=True)))
        except (binascii.Error, ValueError) as exc:
            raise fail(f"xattr {name!r} is not base64: {exc}") from exc
    return tuple(sorted(found))


def _sparse(raw: dict[str, Any], fail: Callable[[str], BackupSetError]) -> Sparse:
    value, logical_size, logical_sha = raw["sparse"], raw.get("logical_size"), raw.get("logical_sha256")
    if not isinstance(logical_size, int) or isinstance(logical_size, bool) or logical_size < 0:
        raise fail(f"a sparse file needs logical_size, an integer >= 0, found {logical_size!r}")
    if not isinstance(logical_sha, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", logical_sha):
        raise fail(f"a sparse file needs logical_sha256 of 64 hex digits, found {logical_sha!r}")
    if not isinstance(value, list):
        raise fail("sparse must be a list of [offset, length] data ranges")
    ranges: list[Range] = []
    end = 0
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2 and all(_natural(n) for n in pair) and pair[1] > 0):
            raise fail(f"sparse range {pair!r} must be [offset, length] with length > 0")
        if pair[0] < end or pair[0] + pair[1] > logical_size:
            raise fail(
                f"sparse range {pair!r} overlaps the one before or leaves the {logical_size}-byte file"
            )
        ranges.append((pair[0], pair[1]))
        end = pair[0] + pair[1]
    return Sparse(tuple(ranges), logical_size, logical_sha.lower())


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
