"""Ways to damage a copy of a good backup set, for the corruption matrix.

Byte flips patch an ISO in place at offsets found through the reader's listing. Anything that
changes a file's length rebuilds the ISO with IsoBuilder from the entries of the original, with
the manifest rewritten and signed again (by the set's own key, for a *validly signed* bad
manifest, or by another key).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import shutil
import sqlite3
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from omni_recovery.backup.isobuild import IsoBuilder
from omni_recovery.backupset import layout, signing
from omni_recovery.backupset.reader import IsoReader, list_backup_set


def copy_set(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def iso_file(folder: Path, kind: str, sequence: int = 1) -> Path:
    matches = sorted(folder.glob(f"*_{kind}_{sequence:03d}.iso"))
    assert len(matches) == 1, (kind, sequence, matches)
    return matches[0]


def flip_byte(iso: Path, path: str, at: int = 0) -> None:
    """Invert one byte of the file `path` inside the image, `at` bytes into it."""
    with IsoReader(str(iso)) as reader:
        entry = reader.listing[path]
        assert at < entry.size, (path, entry.size)
        offset = entry.offset + at
    with iso.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


def replace_in_place(iso: Path, path: str, old: bytes, new: bytes) -> None:
    """Replace bytes of equal length inside one file of the image."""
    assert len(old) == len(new)
    with IsoReader(str(iso)) as reader:
        entry = reader.listing[path]
        data = reader.raw(path)
    at = data.index(old)
    with iso.open("r+b") as fh:
        fh.seek(entry.offset + at)
        fh.write(new)


def index_bytes(iso: Path) -> bytes:
    """The recovery_index.db of an image, as stored."""
    with IsoReader(str(iso)) as reader:
        return reader.raw(layout.INDEX_DB_PATH)


def edit_index(data: bytes, sql: str, params: tuple[Any, ...] = ()) -> bytes:
    """recovery_index.db bytes after running one SQL statement on a copy."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.db"
        path.write_bytes(data)
        conn = sqlite3.connect(path)
        conn.execute(sql, params)
        conn.commit()
        conn.close()
        return path.read_bytes()


def rebuild(
    iso: Path,
    key: Ed25519PrivateKey,
    *,
    edit_manifest: Callable[[dict[str, Any]], None] | None = None,
    replace: dict[str, bytes] | None = None,
    drop: set[str] | frozenset[str] = frozenset(),
    symlinks: dict[str, str] | None = None,
    raw_manifest: bytes | None = None,
    add: dict[str, tuple[bytes, dict[str, Any]]] | None = None,
) -> None:
    """Write the ISO again: files in `drop` left out (and unlisted), files in `replace` with new bytes
    (their manifest size and sha256 updated), files in `add` (path → bytes and manifest fields) added
    and listed, symbolic links in `symlinks` pointing to new targets,
    then `edit_manifest` on the manifest document (or exactly `raw_manifest`, unparsed); the
    manifest and backup_info are signed by `key`, whose public key becomes signer.pub."""
    replace = dict(replace or {})
    with IsoReader(str(iso)) as reader:
        listing = dict(reader.listing)
        contents = {p: reader.raw(p) for p, e in listing.items() if e.type == "file"}
    manifest = json.loads(contents[layout.MANIFEST_PATH])
    contents.update(replace)
    kept = []
    for entry in manifest["files"]:
        if entry["path"] in drop:
            continue
        if entry["path"] in replace:
            entry["size"] = len(replace[entry["path"]])
            entry["sha256"] = hashlib.sha256(replace[entry["path"]]).hexdigest()
        kept.append(entry)
    for path, (data, fields) in (add or {}).items():
        contents[path] = data
        listed = {
            "path": path,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "mode": 0o100644,
        }
        kept.append({**listed, **fields})
    manifest["files"] = kept
    if edit_manifest is not None:
        edit_manifest(manifest)
    manifest_bytes = raw_manifest or json.dumps(manifest, separators=(",", ":")).encode("utf-8")
    contents[layout.MANIFEST_PATH] = manifest_bytes
    contents[layout.MANIFEST_SIG_PATH] = key.sign(manifest_bytes)
    contents[layout.BACKUP_INFO_SIG_PATH] = key.sign(contents[layout.BACKUP_INFO_PATH])
    contents[layout.SIGNER_PUB_PATH] = signing.public_pem(key.public_key())
    builder = IsoBuilder("REBUILT")
    try:
        for path, entry in listing.items():
            if path in drop:
                continue
            if entry.type == "dir":
                builder.add_directory(path, entry.mode or 0o40755)
            elif entry.type == "symlink":
                target = (symlinks or {}).get(path, entry.symlink_target)
                assert target is not None
                builder.add_symlink(path, target)
            else:
                builder.add_bytes(path, contents[path], entry.mode or 0o100644)
        folders = {p for p, e in listing.items() if e.type == "dir"}
        for path in add or {}:
            parents = [posixpath.dirname(path)]
            while posixpath.dirname(parents[-1]):
                parents.append(posixpath.dirname(parents[-1]))
            for folder in reversed(parents):
                if folder not in folders:
                    builder.add_directory(folder, 0o40755)
                    folders.add(folder)
            builder.add_bytes(path, contents[path], 0o100644)
        partial = iso.with_name(iso.name + ".tmp")
        with partial.open("wb") as out:
            builder.write(out)
    finally:
        builder.close()
    partial.replace(iso)


def scatter_sections(iso: Path, path: str) -> bool:
    """Record the file `path` as a multi-extent file whose two sections lie out of order: the second
    half of its bytes first in the image, then the first half (at a block boundary), and each
    directory record of it (ISO 9660 and Joliet trees) split in two, the first section flagged
    multi-extent. Legal ISO 9660 that reads back the same bytes. False, and the image unchanged,
    when a directory block of the file has no room for the second record."""
    with IsoReader(str(iso)) as reader:
        entry = reader.listing[path]
    ((offset, size),) = entry.extents
    assert size > 2 * BLOCK, "a file of more than two blocks"
    first = size // 2 // BLOCK * BLOCK
    data = bytearray(iso.read_bytes())
    whole = bytes(data[offset : offset + size])
    tail_blocks = -(-(size - first) // BLOCK)
    location = offset // BLOCK
    head = _both(location) + _both(size)
    records = [at - 2 for at in _find_all(data, head)]
    edits = [_split_record(data, at, location + tail_blocks, first, location, size - first) for at in records]
    if not edits or any(edit is None for edit in edits):
        return False
    for block_start, block in filter(None, edits):
        data[block_start : block_start + BLOCK] = block
    data[offset : offset + tail_blocks * BLOCK] = whole[first:].ljust(tail_blocks * BLOCK, b"\0")
    data[offset + tail_blocks * BLOCK : offset + tail_blocks * BLOCK + first] = whole[:first]
    iso.write_bytes(bytes(data))
    return True


BLOCK = 2048


def _find_all(data: bytearray, needle: bytes) -> list[int]:
    found, at = [], data.find(needle)
    while at != -1:
        found.append(at)
        at = data.find(needle, at + 1)
    return found


def _both(value: int) -> bytes:
    return struct.pack("<I", value) + struct.pack(">I", value)


def _split_record(
    data: bytearray, at: int, first_block: int, first_size: int, second_block: int, second_size: int
) -> tuple[int, bytes] | None:
    """The directory block holding the record at `at` with that record made two (see scatter_sections);
    None if the block has no room for the second."""
    start = at // BLOCK * BLOCK
    block = bytes(data[start : start + BLOCK])
    pos, length = at - start, block[at - start]
    used = pos
    while used < BLOCK and block[used]:
        used += block[used]
    if used + length > BLOCK:
        return None
    record = bytearray(block[pos : pos + length])
    first = bytearray(record)
    first[2:10], first[10:18], first[25] = _both(first_block), _both(first_size), record[25] | 0x80
    second = bytearray(record)
    second[2:10], second[10:18] = _both(second_block), _both(second_size)
    rebuilt = block[:pos] + bytes(first) + bytes(second) + block[pos + length : used]
    return start, rebuilt.ljust(BLOCK, b"\0")


def scattered_copy(source: Path, folder: Path) -> list[str]:
    """A copy of the set at `source` made at `folder`, in which files of every kind (plain, sealed,
    a chunk part, and large ones) are multi-extent files whose two sections lie out of order."""
    shutil.copytree(source, folder)
    scattered: list[str] = []
    for member in list_backup_set(str(folder)):
        with IsoReader(member.url) as reader:
            files = [e for e in reader.manifest.files if e.type == "file" and e.path.startswith("data/")]
        for entry in sorted(files, key=lambda e: -e.size)[:3]:
            if entry.size > 3 * 2048 and scatter_sections(
                Path(member.url.removeprefix("file://")), entry.path
            ):
                scattered.append(entry.path)
    return scattered


def damage_a_volume_file(folder: Path) -> tuple[Path, str]:
    """Flip the first byte of the first non-empty volume file of the set's first volume-data ISO;
    the ISO and the path damaged."""
    iso = iso_file(folder, "volume-data")
    with IsoReader(str(iso)) as reader:
        path = next(
            p for p, e in sorted(reader.listing.items()) if e.type == "file" and e.size and "/files/" in p
        )
    flip_byte(iso, path)
    return iso, path
