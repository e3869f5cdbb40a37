"""metadata/manifest.json of one ISO as a table of `MANIFEST_SCHEMA`, checked column-wise.

`manifest_table(data, iso=...)`: `pyarrow.json` reads the single JSON object against an explicit
schema (no Python object per entry), the `files` list is flattened into columns, and the format's
rules are checked on whole columns (required fields, types, sizes, sha256 spelling, unique paths)
with `layout.check_relative_path` for every path and a Python pass only over the few symlink and
chunk entries.

It accepts at least what the project's reader (`omni_recovery.backupset.manifest`) accepts, so a
set any spec-following tool wrote registers: hex digests in either case, stored lowercase; `mode`
absent or null takes the reader's default for the entry's type; times are RFC 3339 with `T`/`t`
and `Z`/`z` or an offset (`layout.parse_time`). A manifest that is not JSON, holds a value of the
wrong type, misses a required field, repeats a path or breaks a path rule raises BackupSetError
naming the ISO (and the path when known). Memory: about the bytes of its JSON plus its columns.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from omni_recovery.backupset import layout
from omni_recovery.backupset.manifest import DEFAULT_MODES
from omni_recovery.errors import BackupSetError
from transforms.catalog_fidelity import check_links_and_sparse, owner_link_sparse_columns
from transforms.catalog_tables.schemas import (
    ENTRY_FIELDS,
    MANIFEST_JSON_SCHEMA,
    MANIFEST_SCHEMA,
    SHA256,
    TS,
)


def manifest_table(data: bytes, *, iso: str) -> pa.Table:
    """metadata/manifest.json of one ISO as a table of `MANIFEST_SCHEMA`, checked column-wise."""
    path = layout.MANIFEST_PATH
    try:
        top = pajson.read_json(
            io.BytesIO(data),
            read_options=pajson.ReadOptions(block_size=max(len(data) + 1, 1 << 20), use_threads=False),
            parse_options=pajson.ParseOptions(
                explicit_schema=MANIFEST_JSON_SCHEMA,
                unexpected_field_behavior="ignore",
                newlines_in_values=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise BackupSetError(
            f"manifest is not valid JSON of the expected shape: {exc}", iso=iso, path=path
        ) from exc
    if top.num_rows != 1:
        raise BackupSetError("manifest must be one JSON object", iso=iso, path=path)
    head = {name: top.column(name)[0].as_py() for name in top.column_names if name != "files"}
    if head["format"] not in layout.FORMATS:
        raise BackupSetError(
            f"format must be one of {', '.join(layout.FORMATS)}, found {head['format']!r}", iso=iso, path=path
        )
    set_id = head["backup_set_id"]
    if not isinstance(set_id, str) or not layout.SET_ID_PATTERN.fullmatch(set_id):
        raise BackupSetError(f"backup_set_id {set_id!r} is not a valid id", iso=iso, path=path)
    if head["kind"] not in layout.KINDS:
        raise BackupSetError(f"unknown kind {head['kind']!r}", iso=iso, path=path)
    if not isinstance(head["sequence"], int) or head["sequence"] < 1:
        raise BackupSetError(f"sequence must be >= 1, found {head['sequence']!r}", iso=iso, path=path)
    files_list = top.column("files").combine_chunks()
    if files_list.null_count:
        raise BackupSetError("files must be a list", iso=iso, path=path)
    entries = pa.Table.from_struct_array(files_list.flatten())
    if entries.num_rows == 0:
        entries = pa.Table.from_batches([], schema=pa.schema(ENTRY_FIELDS))
    meta = {"backup_set_id": set_id, "kind": head["kind"], "sequence": str(head["sequence"])}
    if head.get("created_at"):
        meta["created_at"] = str(head["created_at"])
    return _checked_entries(entries, set_id, iso, meta)


def _checked_entries(raw: pa.Table, set_id: str, iso: str, head: dict[str, str]) -> pa.Table:
    where = layout.MANIFEST_PATH

    def fail(message: str, at: str | None = None) -> BackupSetError:
        return BackupSetError(f"manifest entry: {message}", iso=iso, path=at or where)

    n = raw.num_rows
    paths = raw.column("path")
    if paths.null_count:
        raise fail("path must be non-empty text, found None")
    path_list: list[str] = paths.to_pylist()
    for p in path_list:  # the format's path rules, exactly as the reader applies them
        layout.check_relative_path(p, iso=iso)
        if p in layout.UNLISTED_PATHS or p.startswith(layout.SIGNATURE_DIR + "/"):
            raise fail("lists a file that the manifest must not list", p)
    if pc.count_distinct(paths).as_py() != n:
        seen: set[str] = set()
        for p in path_list:
            if p in seen:
                raise BackupSetError("path is listed twice in the manifest", iso=iso, path=p)
            seen.add(p)

    def first_bad(mask: pa.ChunkedArray | pa.Array) -> str:
        index = pc.index(mask, True).as_py()
        return path_list[index]

    types = pc.fill_null(raw.column("type"), "file")
    bad = pc.invert(pc.is_in(types, value_set=pa.array(["file", "dir", "symlink"])))
    if pc.any(bad).as_py():
        raise fail("type must be one of file, dir, symlink", first_bad(bad))
    mode = pc.coalesce(raw.column("mode"), _default_modes(types))
    for name, column in (("size", raw.column("size")), ("mode", mode)):
        bad = pc.or_(pc.is_null(column), pc.less(pc.fill_null(column, 0), 0))
        if pc.any(bad).as_py():
            raise fail(f"{name} must be an integer >= 0", first_bad(bad))
    is_file = pc.equal(types, "file")
    sha = raw.column("sha256")
    sha_ok = pc.fill_null(pc.match_substring_regex(sha, SHA256), False)
    is_link = pc.is_valid(raw.column("hardlink"))
    bad = pc.and_(pc.and_(is_file, pc.invert(is_link)), pc.invert(sha_ok))
    if pc.any(bad).as_py():
        raise fail("sha256 must be 64 hex digits", first_bad(bad))
    not_stored = pc.or_(pc.invert(is_file), is_link)
    bad = pc.and_(not_stored, pc.or_(pc.not_equal(raw.column("size"), 0), pc.is_valid(sha)))
    if pc.any(bad).as_py():
        raise fail("a dir, symlink or hard link entry has size 0 and no sha256", first_bad(bad))
    bad = pc.and_(pc.equal(types, "symlink"), pc.is_null(raw.column("target")))
    if pc.any(bad).as_py():
        raise fail("target must be non-empty text", first_bad(bad))
    component = raw.column("component")
    bad = pc.fill_null(pc.equal(component, ""), False)
    if pc.any(bad).as_py():
        raise fail("component must be non-empty text or null", first_bad(bad))
    mtime = _timestamps(raw.column("mtime"), iso)
    _check_symlinks(raw, types, path_list, iso)
    _check_chunks(raw, path_list, iso)
    check_links_and_sparse(raw, path_list, iso)
    encryption = raw.column("encryption")
    _check_encryption(encryption, path_list, iso)

    def int32(name: str) -> pa.ChunkedArray:
        return raw.column(name).cast(pa.int32())

    return pa.Table.from_arrays(
        [
            pa.array([set_id] * n, pa.string()) if n else pa.array([], pa.string()),
            pa.array([iso] * n, pa.string()) if n else pa.array([], pa.string()),
            paths,
            types,
            raw.column("size"),
            pc.utf8_lower(sha),
            mode.cast(pa.int32()),
            mtime,
            raw.column("target"),
            component,
            raw.column("chunk_of"),
            int32("chunk_index"),
            int32("chunk_count"),
            raw.column("logical_size"),
            pc.utf8_lower(raw.column("logical_sha256")),
            pc.is_valid(encryption),
            _encryption_json(encryption),
            *owner_link_sparse_columns(raw),
        ],
        schema=MANIFEST_SCHEMA,
    ).replace_schema_metadata(head)


def _default_modes(types: pa.ChunkedArray) -> pa.Array:
    """Per row, the mode the reader assumes for an entry of that type without one."""
    names = pa.array(list(DEFAULT_MODES), pa.string())
    return pa.array(list(DEFAULT_MODES.values()), pa.int64()).take(
        pc.index_in(types, value_set=names).combine_chunks()
    )


def _timestamps(column: pa.ChunkedArray, iso: str) -> pa.ChunkedArray:
    try:
        return column.cast(TS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:  # nanosecond mtimes (format 1.1): parsed column-wise too, kept to the microsecond
        return column.cast(pa.timestamp("ns", tz="UTC")).cast(TS, safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass

    values: list[datetime | None] = []
    for text in column.to_pylist():
        if text is None:
            values.append(None)
            continue
        try:
            values.append(layout.parse_time(text))
        except ValueError as exc:
            raise BackupSetError(
                f"manifest entry: mtime is not an RFC 3339 time: {text!r}", iso=iso, path=layout.MANIFEST_PATH
            ) from exc
    return pa.chunked_array([pa.array(values, TS)])


def _check_symlinks(raw: pa.Table, types: pa.ChunkedArray, paths: list[str], iso: str) -> None:
    symlink_rows = pc.indices_nonzero(pc.equal(types, "symlink")).to_pylist()
    if not symlink_rows:
        return
    targets = raw.column("target").to_pylist()
    links = set()
    for row in symlink_rows:
        entry_path, target = paths[row], targets[row] or ""
        match = re.match(r"(data/volumes/[^/]+/[^/]+/files)/", entry_path)
        if not match:
            raise BackupSetError("a symlink must lie inside a volume's files/ tree", iso=iso, path=entry_path)
        if target.startswith("/") or "\x00" in target or "\\" in target:
            raise BackupSetError(f"symlink target {target!r} must be relative", iso=iso, path=entry_path)
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(entry_path), target))
        if not resolved.startswith(match.group(1) + "/"):
            raise BackupSetError(
                f"symlink target {target!r} leaves its volume's files/ tree", iso=iso, path=entry_path
            )
        links.add(entry_path)
    for entry_path in paths:
        parent = posixpath.dirname(entry_path)
        while parent:
            if parent in links:
                raise BackupSetError(f"entry lies under the symlink {parent}", iso=iso, path=entry_path)
            parent = posixpath.dirname(parent)


def _check_chunks(raw: pa.Table, paths: list[str], iso: str) -> None:
    chunk_of = raw.column("chunk_of")
    rows = pc.indices_nonzero(pc.is_valid(chunk_of)).to_pylist()
    if not rows:
        return
    columns = {
        name: raw.column(name).take(pa.array(rows)).to_pylist()
        for name in ("chunk_of", "chunk_index", "chunk_count", "logical_size", "logical_sha256")
    }
    for i, row in enumerate(rows):
        entry_path = paths[row]
        of, index, count = columns["chunk_of"][i], columns["chunk_index"][i], columns["chunk_count"][i]
        size, sha = columns["logical_size"][i], columns["logical_sha256"][i]
        layout.check_relative_path(of, iso=iso)
        if index is None or count is None or size is None or index < 0 or count < 1 or size < 0:
            raise BackupSetError(
                "manifest entry: a part needs chunk_index, chunk_count and logical_size",
                iso=iso,
                path=entry_path,
            )
        if sha is None or not re.fullmatch(SHA256[1:-1], sha):
            raise BackupSetError(
                "manifest entry: logical_sha256 must be 64 hex digits", iso=iso, path=entry_path
            )
        if index >= count:
            raise BackupSetError(
                f"manifest entry: chunk_index {index} is not below chunk_count {count}",
                iso=iso,
                path=entry_path,
            )
        if entry_path != layout.chunk_part_path(of, index):
            raise BackupSetError(
                f"manifest entry: a part of {of} must be named {layout.chunk_part_path(of, index)}",
                iso=iso,
                path=entry_path,
            )


def _check_encryption(encryption: pa.ChunkedArray, paths: list[str], iso: str) -> None:
    rows = pc.indices_nonzero(pc.is_valid(encryption)).to_pylist()
    if not rows:
        return
    values = encryption.take(pa.array(rows)).to_pylist()
    for row, value in zip(rows, values, strict=True):
        if value.get("alg") != "AES-256-GCM":
            raise BackupSetError(
                f"encryption: unsupported algorithm {value.get('alg')!r}", iso=iso, path=paths[row]
            )
        for key in ("key_id", "nonce", "plaintext_sha256", "plaintext_size"):
            if value.get(key) in (None, ""):
                raise BackupSetError(f"encryption: {key} is missing", iso=iso, path=paths[row])


def _encryption_json(encryption: pa.ChunkedArray) -> pa.Array:
    if not encryption.null_count and len(encryption) == 0:
        return pa.array([], pa.string())
    if encryption.null_count == len(encryption):
        return pa.nulls(len(encryption), pa.string())
    out = [
        None if v is None else json.dumps(_lower_digest(v), separators=(",", ":"))
        for v in encryption.to_pylist()
    ]
    return pa.array(out, pa.string())


def _lower_digest(encryption: dict[str, Any]) -> dict[str, Any]:
    digest = encryption.get("plaintext_sha256")
    return {**encryption, "plaintext_sha256": digest.lower()} if isinstance(digest, str) else encryption
