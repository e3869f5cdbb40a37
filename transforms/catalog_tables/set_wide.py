"""The set-wide catalog tables, built from the per-ISO tables (keyed by ISO file name).

`files_catalog` joins every ISO's manifest with its directory records on path, so each row carries
`extents` (every section of its bytes in the ISO, in order) and `extent_offset` beside `size`: a
later stage reads a file straight from its ISO without walking the image again. A listed file the
image lacks, or of another size there, raises BackupSetError naming the ISO and the path.
`components_catalog`, `dependencies_catalog` and `hardware_catalog` union the per-ISO index tables
and drop what several ISOs repeat (the system-core index, which holds the whole set, wins);
`isos_catalog` and `backup_sets_catalog` come from backup_info. Memory: the file catalog holds every
row of the set at once (about 300 bytes a row).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from omni_recovery.backupset import layout
from omni_recovery.errors import BackupSetError
from transforms.catalog_tables.schemas import (
    BACKUP_INFO_SCHEMA,
    BACKUP_SETS_SCHEMA,
    COMPONENTS_SCHEMA,
    DEPENDENCIES_SCHEMA,
    FILES_SCHEMA,
    HARDWARE_SCHEMA,
    ISOS_SCHEMA,
)


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
