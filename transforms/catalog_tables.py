"""Catalog tables: one ISO's manifest, directory records, backup_info and index as Arrow tables,
and the set-wide catalog tables (isos, files, components, dependencies, hardware) built from them.

How it works
------------
- `manifest_table(data, iso=...)` parses metadata/manifest.json column-wise: `pyarrow.json` reads
  the single JSON object against an explicit schema (no Python object per entry), the `files`
  list is flattened into columns, and the format's rules are checked on whole columns (required
  fields, types, sizes, sha256 spelling, unique paths) with `layout.check_relative_path` for every
  path and a Python pass only over the few symlink and chunk entries. The result has the columns of
  `MANIFEST_SCHEMA`, one row per entry.
- `directory_records_table(entries, iso=...)` turns the image's own directory records
  (`IsoImage.walk()`) into `DIRECTORY_RECORDS_SCHEMA` (path, type, size, mode, extent offset and
  length, the chosen Rock Ridge/Joliet name, ...).
- `backup_info_table`, `index_tables` give the other per-ISO tables.
- `files_catalog` joins every ISO's manifest with its directory records on path, so each catalog
  row carries `extents` (every section of its bytes in the ISO, in order) and `extent_offset` (where
  the first starts) beside `size`: a later stage reads a file straight from its ISO without walking
  the image again.
- `components_catalog`, `dependencies_catalog`, `hardware_catalog` union the per-ISO index
  tables and drop what several ISOs repeat (the system-core index, which holds the whole set,
  wins).

Every table has explicit types (`*_SCHEMA`), and every catalog table a `backup_set_id` column.
This module imports no Dagster: assets call it, tests call it directly.

What a manifest may hold
------------------------
At least what the project's reader (`omni_recovery.backupset.manifest`) accepts, so a set any
spec-following tool wrote registers: hex digests (`sha256`, `logical_sha256`, the encryption's
`plaintext_sha256`) in either case, stored lowercase; `mode` absent or null takes the reader's
default for the entry's type (file 0o100644, dir 0o40755, symlink 0o120777); times are RFC 3339
with `T`/`t` between date and time and `Z`/`z` or an offset (`layout.parse_time`).

What can go wrong
-----------------
A manifest that is not JSON, holds a value of the wrong type, misses a required field, repeats a
path, or breaks a path rule raises `BackupSetError` naming the ISO (and the path when known); so
does a file listed in the manifest that the image lacks when the catalog is built. Memory: a
manifest of N entries costs about the bytes of its JSON plus its columns; the file catalog of a
set holds every row of the set at once (about 300 bytes a row).
"""

from __future__ import annotations

import io
import json
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from omni_recovery.backupset import layout
from omni_recovery.backupset.index_db import RecoveryIndex
from omni_recovery.backupset.isofs import IsoEntry
from omni_recovery.backupset.manifest import DEFAULT_MODES, BackupInfo
from omni_recovery.errors import BackupSetError
from transforms.catalog_fidelity import (
    OWNER_LINK_SPARSE_COLUMNS,
    OWNER_LINK_SPARSE_FIELDS,
    check_links_and_sparse,
    owner_link_sparse_columns,
)

__all__ = [
    "BACKUP_INFO_SCHEMA",
    "BACKUP_SETS_SCHEMA",
    "COMPONENTS_SCHEMA",
    "DEPENDENCIES_SCHEMA",
    "DIRECTORY_RECORDS_SCHEMA",
    "FILES_SCHEMA",
    "HARDWARE_SCHEMA",
    "INDEX_FILES_SCHEMA",
    "ISOS_SCHEMA",
    "MANIFEST_SCHEMA",
    "backup_info_table",
    "backup_sets_catalog",
    "components_catalog",
    "dependencies_catalog",
    "directory_records_table",
    "files_catalog",
    "hardware_catalog",
    "index_tables",
    "iso_files",
    "isos_catalog",
    "manifest_table",
]

_TS = pa.timestamp("us", tz="UTC")
_SHA256 = r"^[0-9a-fA-F]{64}$"

_ENCRYPTION = pa.struct(
    [
        ("alg", pa.string()),
        ("key_id", pa.string()),
        ("nonce", pa.string()),
        ("plaintext_sha256", pa.string()),
        ("plaintext_size", pa.int64()),
    ]
)
_ENTRY_FIELDS = [
    ("path", pa.string()),
    ("type", pa.string()),
    ("size", pa.int64()),
    ("sha256", pa.string()),
    ("mode", pa.int64()),
    ("mtime", pa.string()),
    ("target", pa.string()),
    ("component", pa.string()),
    ("chunk_of", pa.string()),
    ("chunk_index", pa.int64()),
    ("chunk_count", pa.int64()),
    ("logical_size", pa.int64()),
    ("logical_sha256", pa.string()),
    ("encryption", _ENCRYPTION),
    *OWNER_LINK_SPARSE_FIELDS,
]
_MANIFEST_JSON_SCHEMA = pa.schema(
    [
        ("format", pa.string()),
        ("backup_set_id", pa.string()),
        ("kind", pa.string()),
        ("sequence", pa.int64()),
        ("created_at", pa.string()),
        ("files", pa.list_(pa.struct(_ENTRY_FIELDS))),
    ]
)

MANIFEST_SCHEMA = pa.schema(
    [
        ("backup_set_id", pa.string()),
        ("iso_name", pa.string()),
        ("path", pa.string()),
        ("type", pa.string()),
        ("size", pa.int64()),
        ("sha256", pa.string()),
        ("mode", pa.int32()),
        ("mtime", _TS),
        ("target", pa.string()),
        ("component_id", pa.string()),
        ("chunk_of", pa.string()),
        ("chunk_index", pa.int32()),
        ("chunk_count", pa.int32()),
        ("logical_size", pa.int64()),
        ("logical_sha256", pa.string()),
        ("encrypted", pa.bool_()),
        ("encryption", pa.string()),  # the manifest's encryption object as JSON text
        *OWNER_LINK_SPARSE_COLUMNS,
    ]
)
"""One row per manifest entry of one ISO."""

DIRECTORY_RECORDS_SCHEMA = pa.schema(
    [
        ("iso_name", pa.string()),
        ("path", pa.string()),
        ("name", pa.string()),
        ("name_source", pa.string()),
        ("iso9660_name", pa.string()),
        ("type", pa.string()),
        ("size", pa.int64()),
        ("mode", pa.int32()),
        ("mtime", _TS),
        ("extent_offset", pa.int64()),
        ("extent_length", pa.int64()),
        ("extent_count", pa.int32()),
        ("extents", pa.string()),  # JSON [[byte offset, length], ...]: every section, in file order
        ("symlink_target", pa.string()),
    ]
)
"""One row per directory record of one ISO (files, folders, symbolic links)."""

BACKUP_INFO_SCHEMA = pa.schema(
    [
        ("backup_set_id", pa.string()),
        ("iso_name", pa.string()),
        ("kind", pa.string()),
        ("sequence", pa.int32()),
        ("url", pa.string()),
        ("size_bytes", pa.int64()),
        ("file_count", pa.int32()),
        ("created_at", _TS),
        ("omnicloud_version", pa.string()),
        ("source_environment", pa.string()),  # JSON
        ("iso_set", pa.string()),  # JSON list of {name, kind, sequence}
        ("encryption", pa.string()),  # JSON
        ("signing", pa.string()),  # JSON
        ("signer_key_id", pa.string()),
    ]
)
"""One row: backup_info.yaml of one ISO, with the ISO's name, kind, size and URL."""

COMPONENTS_SCHEMA = pa.schema(
    [
        ("backup_set_id", pa.string()),
        ("component_id", pa.string()),
        ("kind", pa.string()),
        ("name", pa.string()),
        ("parent_id", pa.string()),
        ("priority", pa.string()),
        ("iso_kind", pa.string()),
        ("attributes", pa.string()),  # JSON object
    ]
)
DEPENDENCIES_SCHEMA = pa.schema(
    [
        ("backup_set_id", pa.string()),
        ("component_id", pa.string()),
        ("depends_on_id", pa.string()),
        ("strength", pa.string()),
    ]
)
INDEX_FILES_SCHEMA = pa.schema(
    [("backup_set_id", pa.string()), ("path", pa.string()), ("component_id", pa.string())]
)
HARDWARE_SCHEMA = pa.schema(
    [
        ("backup_set_id", pa.string()),
        ("node_id", pa.string()),
        ("role", pa.string()),
        ("cpu_cores", pa.int32()),
        ("memory_mib", pa.int64()),
        ("disks", pa.string()),  # JSON array
        ("nics", pa.string()),  # JSON array
    ]
)

FILES_SCHEMA = pa.schema(
    [
        *(field for field in MANIFEST_SCHEMA if field.name != "encryption"),
        ("encryption", pa.string()),
        ("extent_offset", pa.int64()),
        ("extents", pa.string()),
    ]
)
"""The catalog's files: every manifest entry of every ISO, with its extents in the ISO."""

ISOS_SCHEMA = pa.schema(
    [
        ("backup_set_id", pa.string()),
        ("iso_name", pa.string()),
        ("kind", pa.string()),
        ("sequence", pa.int32()),
        ("size_bytes", pa.int64()),
        ("sha256", pa.string()),
        ("file_count", pa.int32()),
        ("url", pa.string()),
    ]
)
BACKUP_SETS_SCHEMA = pa.schema(
    [
        ("backup_set_id", pa.string()),
        ("created_at", _TS),
        ("omnicloud_version", pa.string()),
        ("source_environment", pa.string()),  # JSON
        ("signer_key_id", pa.string()),
        ("iso_count", pa.int32()),
    ]
)


# --------------------------------------------------------------------------------------------
# One ISO


def manifest_table(data: bytes, *, iso: str) -> pa.Table:
    """metadata/manifest.json of one ISO as a table of `MANIFEST_SCHEMA`, checked column-wise."""
    path = layout.MANIFEST_PATH
    try:
        top = pajson.read_json(
            io.BytesIO(data),
            read_options=pajson.ReadOptions(block_size=max(len(data) + 1, 1 << 20), use_threads=False),
            parse_options=pajson.ParseOptions(
                explicit_schema=_MANIFEST_JSON_SCHEMA,
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
        entries = pa.Table.from_batches([], schema=pa.schema(_ENTRY_FIELDS))
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
    sha_ok = pc.fill_null(pc.match_substring_regex(sha, _SHA256), False)
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
        return column.cast(_TS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:  # nanosecond mtimes (format 1.1): parsed column-wise too, kept to the microsecond
        return column.cast(pa.timestamp("ns", tz="UTC")).cast(_TS, safe=False)
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
    return pa.chunked_array([pa.array(values, _TS)])


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
        if sha is None or not re.fullmatch(_SHA256[1:-1], sha):
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


def directory_records_table(entries: Iterable[IsoEntry], *, iso: str) -> pa.Table:
    """The image's own directory records (`IsoImage.walk()`) as a table of `DIRECTORY_RECORDS_SCHEMA`."""
    columns: dict[str, list[Any]] = {field.name: [] for field in DIRECTORY_RECORDS_SCHEMA}
    for entry in entries:
        columns["path"].append(entry.path)
        columns["name"].append(entry.path.rpartition("/")[2])
        columns["name_source"].append(entry.name_source)
        columns["iso9660_name"].append(entry.iso9660_name)
        columns["type"].append(entry.type)
        columns["size"].append(entry.size)
        columns["mode"].append(entry.mode)
        columns["mtime"].append(entry.mtime)
        columns["extent_offset"].append(entry.offset)
        columns["extent_length"].append(sum(length for _, length in entry.extents))
        columns["extent_count"].append(len(entry.extents))
        columns["extents"].append(json.dumps(entry.extents) if entry.type == "file" else None)
        columns["symlink_target"].append(entry.symlink_target)
    columns["iso_name"] = [iso] * len(columns["path"])
    return pa.Table.from_pydict(columns, schema=DIRECTORY_RECORDS_SCHEMA)


def backup_info_table(
    info: BackupInfo, *, iso: str, kind: str, sequence: int, url: str, size_bytes: int, file_count: int
) -> pa.Table:
    """backup_info.yaml of one ISO as a one-row table of `BACKUP_INFO_SCHEMA`."""
    signing = info.signing or {}
    row = {
        "backup_set_id": info.backup_set_id,
        "iso_name": iso,
        "kind": kind,
        "sequence": sequence,
        "url": url,
        "size_bytes": size_bytes,
        "file_count": file_count,
        "created_at": _parse_time(info.created_at, iso),
        "omnicloud_version": info.omnicloud_version,
        "source_environment": _json(info.source_environment),
        "iso_set": _json([{"name": m.name, "kind": m.kind, "sequence": m.sequence} for m in info.iso_set]),
        "encryption": _json(info.encryption),
        "signing": _json(signing),
        "signer_key_id": str(signing.get("key_id")) if signing.get("key_id") else None,
    }
    return pa.Table.from_pylist([row], schema=BACKUP_INFO_SCHEMA)


def _parse_time(text: str, iso: str) -> Any:
    try:
        return layout.parse_time(text)
    except ValueError as exc:
        raise BackupSetError(
            f"created_at is not an RFC 3339 time: {text!r}", iso=iso, path=layout.BACKUP_INFO_PATH
        ) from exc


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def index_tables(index: RecoveryIndex, *, backup_set_id: str) -> dict[str, pa.Table]:
    """Every table of one recovery_index.db: components, dependencies, files, hardware."""
    sid = backup_set_id
    return {
        "components": pa.Table.from_pylist(
            [
                {
                    "backup_set_id": sid,
                    "component_id": c.component_id,
                    "kind": c.kind,
                    "name": c.name,
                    "parent_id": c.parent_id,
                    "priority": c.priority,
                    "iso_kind": c.iso_kind,
                    "attributes": _json(c.attributes),
                }
                for c in index.components
            ],
            schema=COMPONENTS_SCHEMA,
        ),
        "dependencies": pa.Table.from_pylist(
            [
                {
                    "backup_set_id": sid,
                    "component_id": d.component_id,
                    "depends_on_id": d.depends_on_id,
                    "strength": d.strength,
                }
                for d in index.dependencies
            ],
            schema=DEPENDENCIES_SCHEMA,
        ),
        "files": pa.Table.from_pylist(
            [{"backup_set_id": sid, "path": p, "component_id": c} for p, c in index.files],
            schema=INDEX_FILES_SCHEMA,
        ),
        "hardware": pa.Table.from_pylist(
            [
                {
                    "backup_set_id": sid,
                    "node_id": h.node_id,
                    "role": h.role,
                    "cpu_cores": h.cpu_cores,
                    "memory_mib": h.memory_mib,
                    "disks": json.dumps(h.disks, separators=(",", ":")),
                    "nics": json.dumps(h.nics, separators=(",", ":")),
                }
                for h in index.hardware
            ],
            schema=HARDWARE_SCHEMA,
        ),
    }


# --------------------------------------------------------------------------------------------
# The set-wide catalog


def _concat(tables: Iterable[pa.Table], schema: pa.Schema) -> pa.Table:
    parts = [t.select(schema.names).cast(schema) for t in tables]
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts)


def _ordered(parts: Mapping[str, pa.Table]) -> list[pa.Table]:
    """Per-ISO tables with system-core ISOs first (their index holds the whole set), then by name."""

    def rank(name: str) -> tuple[int, str]:
        return (0 if f"_{layout.SYSTEM_CORE}_" in name else 1, name)

    return [parts[name] for name in sorted(parts, key=rank)]


def files_catalog(manifests: Mapping[str, pa.Table], records: Mapping[str, pa.Table]) -> pa.Table:
    """Every manifest entry of every ISO once, with its extent offset from the ISO's directory records.

    `manifests` and `records` are keyed by ISO file name. A listed file the image does not hold, or
    whose recorded size differs, raises BackupSetError naming the ISO and path."""
    out = []
    for iso_name in sorted(manifests):
        if iso_name not in records:
            raise BackupSetError("the ISO's directory records were not ingested", iso=iso_name)
        out.append(iso_files(manifests[iso_name], records[iso_name], iso=iso_name))
    if not out:
        return FILES_SCHEMA.empty_table()
    table = pa.concat_tables(out)
    return table


def iso_files(manifest: pa.Table, records: pa.Table, *, iso: str) -> pa.Table:
    """One ISO's rows of the files catalog: its manifest joined with its directory records on path."""
    listing = records.select(["path", "type", "extent_offset", "extent_length", "extents"])
    listing = listing.rename_columns(["path", "record_type", "extent_offset", "extent_length", "extents"])
    joined = manifest.join(listing, keys="path", join_type="left outer", use_threads=False)
    _check_extents(joined, iso)
    return joined.select(FILES_SCHEMA.names).cast(FILES_SCHEMA)


def _check_extents(joined: pa.Table, iso: str) -> None:
    record_type = joined.column("record_type")
    types = joined.column("type")
    bad = pc.and_(pc.fill_null(pc.not_equal(record_type, types), True), pc.is_null(joined.column("hardlink")))
    if pc.any(bad).as_py():
        index = pc.index(bad, True).as_py()
        path = joined.column("path")[index].as_py()
        raise BackupSetError(
            f"listed in the manifest as a {types[index].as_py()}, but the image holds "
            f"{record_type[index].as_py() or 'nothing'} there",
            iso=iso,
            path=path,
        )
    is_file = pc.equal(types, "file")
    bad = pc.and_(is_file, pc.not_equal(joined.column("extent_length"), joined.column("size")))
    if pc.any(bad).as_py():
        index = pc.index(bad, True).as_py()
        raise BackupSetError(
            f"size is {joined.column('extent_length')[index].as_py()} bytes in the image, "
            f"{joined.column('size')[index].as_py()} in the manifest",
            iso=iso,
            path=joined.column("path")[index].as_py(),
        )


def _unique(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """The first row of each distinct `keys` value, in table order."""
    if table.num_rows == 0:
        return table
    numbered = table.append_column("__row", pa.array(range(table.num_rows), pa.int64()))
    firsts = numbered.group_by(list(keys), use_threads=False).aggregate([("__row", "min")])
    rows = pc.sort_indices(firsts.column("__row_min"))
    take = firsts.column("__row_min").take(rows)
    return table.take(take)


def components_catalog(per_iso: Mapping[str, pa.Table]) -> pa.Table:
    """Components of every ISO's index, one row per (backup_set_id, component_id)."""
    return _unique(_concat(_ordered(per_iso), COMPONENTS_SCHEMA), ["backup_set_id", "component_id"])


def dependencies_catalog(per_iso: Mapping[str, pa.Table]) -> pa.Table:
    """Dependency edges of every ISO's index, each distinct edge once."""
    return _unique(_concat(_ordered(per_iso), DEPENDENCIES_SCHEMA), DEPENDENCIES_SCHEMA.names)


def hardware_catalog(per_iso: Mapping[str, pa.Table]) -> pa.Table:
    """Original nodes from every ISO's index, one row per (backup_set_id, node_id)."""
    return _unique(_concat(_ordered(per_iso), HARDWARE_SCHEMA), ["backup_set_id", "node_id"])


def isos_catalog(backup_infos: Mapping[str, pa.Table]) -> pa.Table:
    """One row per ISO: set, kind, sequence, size, manifest entry count, URL."""
    table = _concat(_ordered(backup_infos), BACKUP_INFO_SCHEMA)
    table = table.append_column("sha256", pa.nulls(table.num_rows, pa.string()))
    return (
        table.select(ISOS_SCHEMA.names)
        .cast(ISOS_SCHEMA)
        .sort_by([("backup_set_id", "ascending"), ("kind", "ascending"), ("sequence", "ascending")])
    )


def backup_sets_catalog(backup_infos: Mapping[str, pa.Table]) -> pa.Table:
    """One row per backup set, from backup_info (system-core's copy first)."""
    table = _concat(_ordered(backup_infos), BACKUP_INFO_SCHEMA)
    first = _unique(table, ["backup_set_id"])
    counts = table.group_by("backup_set_id", use_threads=False).aggregate([("iso_name", "count")])
    joined = first.join(counts, keys="backup_set_id", use_threads=False)
    joined = joined.append_column("iso_count", joined.column("iso_name_count").cast(pa.int32()))
    return joined.select(BACKUP_SETS_SCHEMA.names).cast(BACKUP_SETS_SCHEMA).sort_by("backup_set_id")
