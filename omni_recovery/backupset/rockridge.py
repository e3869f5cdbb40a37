"""Rock Ridge (RRIP over SUSP) in ISO 9660 directory records, and the records' dates.

Entries parsed: ``NM`` (names split over several entries are joined), ``PX`` (mode; 36- and
44-byte forms), ``SL`` (symbolic link targets, with CURRENT/PARENT/ROOT components and
continuations), ``TF`` (modify time; short and long form), ``CE`` (continuation areas, read
through the image's bounds-checked `continuation`), ``CL``/``RE`` (directories relocated by the
writer because they were deeper than 8 levels). Unknown entries are ignored. An entry that
overruns its area, too many chained continuation areas, a name of '.' or '..', a link component
holding '/' or NUL and a link to the volume root or host are refused with BackupSetError (or
UnsafePathError) naming the ISO and path. Unparseable dates become None rather than errors.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Final, NamedTuple

from omni_recovery.errors import BackupSetError, UnsafePathError

__all__ = ["Continuation", "RockRidge", "date7", "names_rock_ridge", "rock_ridge_fields", "tf_modify"]

_RRIP_IDS: Final = (b"RRIP_1991A", b"IEEE_P1282", b"IEEE_1282")
_MAX_CE_HOPS: Final = 64  # continuation areas followed for one record
_SUSP_HEAD: Final = struct.Struct("<2sBB")
_U32: Final = struct.Struct("<I")
_CE_BODY: Final = struct.Struct("<I4xI4xI")
_DATE7: Final = struct.Struct("<6Bb")

# The bytes of one continuation area, given its CE entry's (block, offset, length) and the path
# for errors.
Continuation = Callable[[tuple[int, int, int], str], bytes]


class RockRidge(NamedTuple):
    """The Rock Ridge fields of one directory record."""

    name: bytes | None
    mode: int | None
    target: str | None  # a symbolic link's target
    mtime: datetime | None
    child_link: int | None  # the block of a relocated directory (CL)
    relocated: bool  # the record of a relocated directory where it really lies (RE)


def names_rock_ridge(record: bytes, start: int, end: int, *, iso: str, continuation: Continuation) -> bool:
    """Whether the SUSP entries of the root's "." record, from its SP entry at `start`, name Rock
    Ridge (an RRIP ER entry, or RR, PX or NM), following continuation areas until they do."""
    found = False
    data, pos, hops = record, start, 0
    while True:
        ce: tuple[int, int, int] | None = None
        while end - pos >= 4:
            signature, length, _version = _SUSP_HEAD.unpack_from(data, pos)
            if length < 4 or pos + length > end:
                raise BackupSetError("the root's SUSP entries overrun their area", iso=iso, path="/")
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
            raise BackupSetError("too many chained SUSP continuation areas", iso=iso, path="/")
        data = continuation(ce, "/")
        pos, end = 0, len(data)
    return found


def rock_ridge_fields(
    data: bytes, pos: int, end: int, where: str, *, iso: str, continuation: Continuation
) -> RockRidge:
    """The Rock Ridge fields of one record's system use area, following CE areas."""
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
                modified = tf_modify(data, pos, length)
                if modified is not None:
                    mtime = modified
            elif signature == b"SL":
                if components is None:
                    components = []
                component_continues = _sl(data, pos, length, components, component_continues, where, iso)
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
        data = continuation(ce, where)
        pos, end = 0, len(data)

    target: str | None = None
    if components is not None:
        if not components:
            raise BackupSetError("a Rock Ridge symbolic link has no target", iso=iso, path=where)
        raw = b"/" if components == [b""] else b"/".join(components)
        try:
            target = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BackupSetError(f"symbolic link target {raw!r} is not UTF-8", iso=iso, path=where) from exc
    return RockRidge(name, mode, target, mtime, child_link, relocated)


def _sl(
    data: bytes, pos: int, length: int, components: list[bytes], continues: bool, where: str, iso: str
) -> bool:
    """Add one SL entry's components; returns whether the last component continues."""
    p = pos + 5
    end = pos + length
    while p < end:
        if p + 2 > end:
            raise BackupSetError("a Rock Ridge SL component overruns its entry", iso=iso, path=where)
        flags, size = data[p], data[p + 1]
        p += 2
        if p + size > end:
            raise BackupSetError("a Rock Ridge SL component overruns its entry", iso=iso, path=where)
        if flags & 0x08:  # ROOT
            components.clear()
            components.append(b"")
            continues = False
            p += size
            continue
        if flags & 0x30:
            raise BackupSetError(
                "a Rock Ridge symbolic link to the volume root or host is not supported",
                iso=iso,
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
                    f"symbolic link component {piece!r} holds '/' or NUL", iso=iso, path=where
                )
        if continues and components:
            components[-1] += piece
        else:
            components.append(piece)
        continues = bool(flags & 0x01)
        p += size
    return continues


@functools.lru_cache(maxsize=4096)
def date7(year: int, month: int, day: int, hour: int, minute: int, second: int, tz: int) -> datetime | None:
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


def tf_modify(data: bytes, pos: int, length: int) -> datetime | None:
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
        return date7(*_DATE7.unpack_from(data, start))
    return _date17(data[start : start + 17])
