"""The other tables of one ISO: its directory records, its backup_info and its recovery index.

`directory_records_table(rows, iso=...)` takes the image's own directory listing as plain rows (one
mapping per file, folder or symbolic link with the fields of `IsoEntry`: path, type, size, offset,
extents, mode, mtime, symlink_target, name_source, iso9660_name) and gives
`DIRECTORY_RECORDS_SCHEMA`; `backup_info_table` one row of `BACKUP_INFO_SCHEMA`; `index_tables`
every table of recovery_index.db. A backup_info whose created_at is no RFC 3339 time raises
BackupSetError naming the ISO and the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from omni_recovery.backupset import layout
from omni_recovery.backupset.index_db import RecoveryIndex
from omni_recovery.backupset.manifest import BackupInfo
from omni_recovery.errors import BackupSetError
from transforms.catalog_tables.schemas import (
    BACKUP_INFO_SCHEMA,
    COMPONENTS_SCHEMA,
    DEPENDENCIES_SCHEMA,
    DIRECTORY_RECORDS_SCHEMA,
    HARDWARE_SCHEMA,
    INDEX_FILES_SCHEMA,
)


def directory_records_table(rows: Iterable[Mapping[str, Any]], *, iso: str) -> pa.Table:
    """The image's own directory listing (plain rows with the fields of `IsoEntry`) as a table of
    `DIRECTORY_RECORDS_SCHEMA`."""
    columns: dict[str, list[Any]] = {field.name: [] for field in DIRECTORY_RECORDS_SCHEMA}
    for row in rows:
        extents = [tuple(extent) for extent in row["extents"]]
        for name in (
            "path",
            "name_source",
            "iso9660_name",
            "type",
            "size",
            "mode",
            "mtime",
            "symlink_target",
        ):
            columns[name].append(row[name])
        columns["name"].append(row["path"].rpartition("/")[2])
        columns["extent_offset"].append(row["offset"])
        columns["extent_length"].append(sum(length for _, length in extents))
        columns["extent_count"].append(len(extents))
        columns["extents"].append(json.dumps(extents) if row["type"] == "file" else None)
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
