"""Ingest: each ISO of a backup set becomes Arrow tables, one Dagster partition per ISO file.

How it works: the partitions are dynamic (`ISO_PARTITIONS`, name `isos`): one key per ISO file name,
added by `register-isos` or the watched-folder sensor, which also record the ISO's URL in the
`iso_registry` resource. The multi-asset `ingest_iso` opens each ISO of its partitions once
(`IsoReader`: one walk of the directory records) and emits, per ISO:
- `iso_manifest` (metadata/manifest.json, checked column-wise) and `iso_directory_records` (the
  image's own records: path, type, size, mode, extent, Rock Ridge name);
- `iso_backup_info`: backup_info.yaml, with the ISO's kind, sequence, size and URL;
- `iso_index_components`, `iso_index_dependencies`, `iso_index_files`, `iso_index_hardware`:
  every table of metadata/recovery_index.db (its bytes checked against the manifest first);
- `iso_config_files`: the bytes of the configuration files (checked against the manifest).
With `BackfillPolicy.single_run()` a run over many partitions is one step, each output a dict
partition key → table. To hold one ISO's tables in memory at a time (a set of a million files), each
table is written as Parquet beside its final place as soon as it is read (`stage_table`), and the
Parquet IO manager only moves the files into place. Signatures and completeness are validation's.

What can go wrong: anything malformed raises `BackupSetError` naming the ISO (and the path): an ISO
whose manifest names another set, kind or sequence than its file name (a foreign or renamed file), a
damaged image, manifest or index, a configuration file whose bytes differ from the manifest. The step
then fails as a whole and no partition of it is written, so nothing downstream sees half a set.
"""

import dataclasses
import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetExecutionContext,
    AssetOut,
    BackfillPolicy,
    DynamicPartitionsDefinition,
    Output,
    multi_asset,
)

from io_managers.parquet import StagedParquet, stage_table
from omni_recovery.backupset import layout
from omni_recovery.backupset.index_db import RecoveryIndex, read_index
from omni_recovery.backupset.reader import IsoReader
from omni_recovery.errors import BackupSetError, IntegrityError
from transforms.catalog_tables import (
    MANIFEST_SCHEMA,
    backup_info_table,
    directory_records_table,
    index_tables,
    manifest_table,
)
from transforms.configs import is_config_path

__all__ = ["CONFIG_FILES_SCHEMA", "INGEST_TABLES", "ISO_PARTITIONS", "ingest_iso", "read_iso_tables"]

ISO_PARTITIONS = DynamicPartitionsDefinition(name="isos")
CONFIG_FILE_LIMIT = 64 * 1024 * 1024

# Parts of a chunked configuration file (another writer's small chunk size) are rows of their own
# here; the catalog joins them once every part is registered (transforms.configs.whole_config_files).
_CHUNK_COLUMNS = ("chunk_of", "chunk_index", "chunk_count", "logical_size", "logical_sha256")
CONFIG_FILES_SCHEMA = pa.schema(
    [
        ("backup_set_id", pa.string()),
        ("iso_name", pa.string()),
        ("path", pa.string()),
        ("component_id", pa.string()),
        ("content", pa.large_binary()),
        *[(name, MANIFEST_SCHEMA.field(name).type) for name in _CHUNK_COLUMNS],
    ]
)

INGEST_TABLES: dict[str, str] = {
    "iso_manifest": "Manifest entries of one ISO (metadata/manifest.json), one row per entry.",
    "iso_directory_records": "The ISO image's own directory records: path, type, size, mode, extent, name.",
    "iso_backup_info": "backup_info.yaml of one ISO, with its kind, sequence, size and URL.",
    "iso_index_components": "Components table of the ISO's recovery_index.db.",
    "iso_index_dependencies": "Dependencies table of the ISO's recovery_index.db.",
    "iso_index_files": "Files table (path to component) of the ISO's recovery_index.db.",
    "iso_index_hardware": "Hardware table (original nodes) of the ISO's recovery_index.db.",
    "iso_config_files": "Configuration files of one ISO (YAML/JSON bytes, checked against the manifest).",
}


def read_iso_tables(key: str, url: str, size: int) -> dict[str, pa.Table]:
    """Every ingest table of one ISO, opening the image once.

    The manifest is parsed only column-wise (no Python object per entry), and the few files read
    here (the index, the configuration files) are checked against its size and sha256."""
    name = layout.parse_iso_filename(key)
    with IsoReader(url) as reader:
        manifest = manifest_table(reader.manifest_bytes, iso=key)
        head = manifest.schema.metadata or {}
        found = (
            head.get(b"backup_set_id", b"").decode(),
            head.get(b"kind", b"").decode(),
            int(head.get(b"sequence", b"0")),
        )
        if found != (name.backup_set_id, name.kind, name.sequence):
            raise BackupSetError(
                f"the manifest describes {found[0]} {found[1]} #{found[2]}, not what the file name says: "
                "a foreign or renamed ISO",
                iso=key,
                path=layout.MANIFEST_PATH,
            )
        info = reader.backup_info
        if info.backup_set_id != name.backup_set_id:
            raise BackupSetError(
                f"backup_info names set {info.backup_set_id}, the file name {name.backup_set_id}",
                iso=key,
                path=layout.BACKUP_INFO_PATH,
            )
        records = directory_records_table(map(dataclasses.asdict, reader.listing.values()), iso=key)
        wanted = _wanted_files(manifest)
        index = index_tables(_read_index(reader, wanted, key), backup_set_id=name.backup_set_id)
        configs = _config_files(reader, wanted, name.backup_set_id, key)
    return {
        "iso_manifest": manifest,
        "iso_directory_records": records,
        "iso_backup_info": backup_info_table(
            info,
            iso=key,
            kind=name.kind,
            sequence=name.sequence,
            url=url,
            size_bytes=size,
            file_count=manifest.num_rows,
        ),
        "iso_index_components": index["components"],
        "iso_index_dependencies": index["dependencies"],
        "iso_index_files": index["files"],
        "iso_index_hardware": index["hardware"],
        "iso_config_files": configs,
    }


class _Listed(NamedTuple):
    """What the manifest says of a file the ingest reads."""

    size: int
    sha256: str
    component_id: str | None
    chunk: dict[str, Any]  # _CHUNK_COLUMNS → value; every value None for a whole file


def _wanted_files(manifest: pa.Table) -> dict[str, _Listed]:
    """path → manifest facts of the index and the configuration files (and their parts), from the manifest."""
    paths = manifest.column("path")
    mask = pc.and_(
        pc.and_(pc.equal(manifest.column("type"), "file"), pc.invert(manifest.column("encrypted"))),
        pc.or_(pc.equal(paths, layout.INDEX_DB_PATH), pc.starts_with(paths, "data/")),
    )
    mask = pc.and_(mask, pc.is_null(manifest.column("hardlink")))  # a later name: its bytes are its first's
    columns = ["path", "size", "sha256", "component_id", *_CHUNK_COLUMNS]
    subset = manifest.filter(mask).select(columns).to_pylist()
    return {
        row["path"]: _Listed(
            row["size"], row["sha256"], row["component_id"], {name: row[name] for name in _CHUNK_COLUMNS}
        )
        for row in subset
        if row["path"] == layout.INDEX_DB_PATH or is_config_path(row["chunk_of"] or row["path"])
    }


def _verified_bytes(reader: IsoReader, listed: _Listed, path: str, key: str) -> bytes:
    size, sha = listed.size, listed.sha256
    if size > CONFIG_FILE_LIMIT:
        raise BackupSetError(
            f"file of {size} bytes is larger than the {CONFIG_FILE_LIMIT} allowed here", iso=key, path=path
        )
    entry = reader.listing.get(path)
    if entry is None or entry.type != "file":
        raise BackupSetError("file listed in the manifest is missing from the image", iso=key, path=path)
    if entry.size != size:
        raise IntegrityError(
            f"size is {entry.size} bytes in the image, {size} in the manifest", iso=key, path=path
        )
    data = reader.image.read_bytes(entry, limit=CONFIG_FILE_LIMIT)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha:
        raise IntegrityError(f"sha256 is {digest}, the manifest says {sha}", iso=key, path=path)
    return data


def _read_index(reader: IsoReader, wanted: dict[str, _Listed], key: str) -> RecoveryIndex:
    listed = wanted.get(layout.INDEX_DB_PATH)
    if listed is None:
        raise BackupSetError(
            "the manifest does not list the recovery index", iso=key, path=layout.INDEX_DB_PATH
        )
    data = _verified_bytes(reader, listed, layout.INDEX_DB_PATH, key)
    with tempfile.TemporaryDirectory(prefix="omni-index-") as tmp:
        copy = Path(tmp) / "recovery_index.db"
        copy.write_bytes(data)
        return read_index(copy, iso=key)


def _config_files(reader: IsoReader, wanted: dict[str, _Listed], set_id: str, key: str) -> pa.Table:
    rows = [
        {
            "backup_set_id": set_id,
            "iso_name": key,
            "path": path,
            "component_id": listed.component_id,
            "content": _verified_bytes(reader, listed, path, key),
            **listed.chunk,
        }
        for path, listed in sorted(wanted.items())
        if path != layout.INDEX_DB_PATH
    ]
    return pa.Table.from_pylist(rows, schema=CONFIG_FILES_SCHEMA)


@multi_asset(
    name="ingest_iso",
    outs={
        name: AssetOut(description=description, io_manager_key="parquet_io_manager", group_name="ingest")
        for name, description in INGEST_TABLES.items()
    },
    partitions_def=ISO_PARTITIONS,
    backfill_policy=BackfillPolicy.single_run(),
    required_resource_keys={"iso_registry", "progress", "parquet_io_manager"},
)
def ingest_iso(context: AssetExecutionContext) -> Iterator[Output[Any]]:
    """Read each ISO of the run's partitions once into Arrow tables (manifest, records, index, configs)."""
    registry = context.resources.iso_registry
    progress = context.resources.progress
    parquet = context.resources.parquet_io_manager
    per_table: dict[str, dict[str, StagedParquet]] = {name: {} for name in INGEST_TABLES}
    try:
        for key in context.partition_keys:
            entry = registry.lookup(key)
            context.log.info(f"ingesting {key} from {entry['url']}")
            for name, table in read_iso_tables(key, entry["url"], int(entry["size"])).items():
                # Written now, moved into place by the IO manager: one ISO's tables in memory at a time.
                per_table[name][key] = stage_table(table, parquet.path_for([name], key))
            progress.advance("ingest", 1)
    except BaseException:
        for staged in per_table.values():
            for item in staged.values():
                item.discard()
        raise
    for name, tables in per_table.items():
        yield Output(tables, output_name=name)
