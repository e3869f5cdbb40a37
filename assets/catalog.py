"""Catalog: every ingested ISO combined into set-wide tables, in Parquet and in PostgreSQL.

How it works: each asset is unpartitioned and reads every partition of the ingest tables it needs (a
dict ISO file name → Arrow table; `files`, the big one, reads one ISO's Parquet files at a time and
only the columns it needs), then calls `transforms.catalog_tables` / `transforms.configs`:
- `backup_sets`, `isos`, `files`, `components`, `dependencies`, `hardware`: stored as Parquet and
  loaded into `omni.<name>` by the `catalog_io_manager` (delete the sets' rows + binary COPY, one
  transaction per asset). `files` has one row per manifest entry with its extent (`iso_name`,
  `extents`, `size`), so later stages read a file straight from its ISO. The others depend on
  `backup_sets`, whose row their deferred foreign keys need.
- `configuration_tables`: the parsed configurations as typed Parquet tables (Directors, VMs,
  history, hardware; orchestrators and their database tables typed from schema.json; applications,
  containers, volumes; services; network), plus `configurations`, one row per configuration file
  (path → parsed document as jsonb) loaded into `omni.configurations`.
Every catalog table carries `backup_set_id`: a catalog holds every registered set side by side, and
reloading one set replaces only its rows.

What can go wrong: an ingest partition registered but never materialised fails the load with the
path of the missing Parquet file. A manifest entry the image lacks, or a configuration file that does
not parse or type-check, raises `BackupSetError` naming the ISO or file; the asset then loads nothing.
"""

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetOut,
    AutomationCondition,
    Output,
    asset,
    multi_asset,
)

from assets.ingest import ISO_PARTITIONS
from io_managers.parquet import read_table
from transforms.catalog_tables import (
    FILES_SCHEMA,
    backup_sets_catalog,
    components_catalog,
    dependencies_catalog,
    hardware_catalog,
    iso_files,
    isos_catalog,
)
from transforms.configs import CONFIG_SCHEMAS, config_tables, parse_document, whole_config_files

__all__ = [
    "CATALOG_ASSETS",
    "CONFIG_OUTPUTS",
    "backup_sets",
    "components",
    "configuration_tables",
    "dependencies",
    "files",
    "hardware",
    "isos",
]

GROUP = "catalog"
MANIFEST_COLUMNS = [name for name in FILES_SCHEMA.names if name not in ("extent_offset", "extents")]
RECORD_COLUMNS = ["path", "type", "extent_offset", "extent_length", "extents"]
# Materialise once every ingest partition is (the watched-folder sensor only ingests).
EAGER = AutomationCondition.eager()
PerIso = dict[str, pa.Table]


def _progress(context: AssetExecutionContext) -> None:
    context.resources.progress.advance("catalog", 1)


@asset(
    group_name=GROUP,
    io_manager_key="catalog_io_manager",
    automation_condition=EAGER,
    metadata={"pg_table": "backup_sets"},
    ins={"iso_backup_info": AssetIn()},
    required_resource_keys={"progress"},
)
def backup_sets(context: AssetExecutionContext, iso_backup_info: PerIso) -> pa.Table:
    """One row per registered backup set (backup_info.yaml: created_at, version, source, signer)."""
    _progress(context)
    return backup_sets_catalog(iso_backup_info)


@asset(
    group_name=GROUP,
    io_manager_key="catalog_io_manager",
    automation_condition=EAGER,
    metadata={"pg_table": "isos"},
    ins={"iso_backup_info": AssetIn()},
    deps=[backup_sets],
    required_resource_keys={"progress"},
)
def isos(context: AssetExecutionContext, iso_backup_info: PerIso) -> pa.Table:
    """One row per ISO of every set: kind, sequence, size in bytes, manifest entries, URL."""
    _progress(context)
    return isos_catalog(iso_backup_info)


@asset(
    group_name=GROUP,
    io_manager_key="catalog_io_manager",
    automation_condition=EAGER,
    metadata={"pg_table": "files"},
    deps=[AssetKey("iso_manifest"), AssetKey("iso_directory_records"), backup_sets],
    required_resource_keys={"progress", "parquet_io_manager"},
)
def files(context: AssetExecutionContext) -> pa.Table:
    """Every manifest entry of every ISO once, with its extent in the ISO (iso_name, extent_offset, size)."""
    _progress(context)
    # Read one ISO's ingest tables at a time (only the columns needed), not every partition at once:
    # a set of a million files then holds its catalog rows and one ISO's inputs, not all inputs too.
    parquet = context.resources.parquet_io_manager
    parts = []
    for key in sorted(context.instance.get_dynamic_partitions(ISO_PARTITIONS.name or "isos")):
        manifest = read_table(parquet.path_for(["iso_manifest"], key), MANIFEST_COLUMNS)
        records = read_table(parquet.path_for(["iso_directory_records"], key), RECORD_COLUMNS)
        parts.append(iso_files(manifest, records, iso=key))
    return pa.concat_tables(parts) if parts else FILES_SCHEMA.empty_table()


@asset(
    group_name=GROUP,
    io_manager_key="catalog_io_manager",
    automation_condition=EAGER,
    metadata={"pg_table": "components"},
    ins={"iso_index_components": AssetIn()},
    deps=[backup_sets],
    required_resource_keys={"progress"},
)
def components(context: AssetExecutionContext, iso_index_components: PerIso) -> pa.Table:
    """The component registry of every set (system-core's index wins over the others' copies)."""
    _progress(context)
    return components_catalog(iso_index_components)


@asset(
    group_name=GROUP,
    io_manager_key="catalog_io_manager",
    automation_condition=EAGER,
    metadata={"pg_table": "dependencies"},
    ins={"iso_index_dependencies": AssetIn()},
    deps=[backup_sets],
    required_resource_keys={"progress"},
)
def dependencies(context: AssetExecutionContext, iso_index_dependencies: PerIso) -> pa.Table:
    """The dependency graph of every set: component → depends_on, hard or soft, each edge once."""
    _progress(context)
    return dependencies_catalog(iso_index_dependencies)


@asset(
    group_name=GROUP,
    io_manager_key="catalog_io_manager",
    automation_condition=EAGER,
    metadata={"pg_table": "hardware"},
    ins={"iso_index_hardware": AssetIn()},
    deps=[backup_sets],
    required_resource_keys={"progress"},
)
def hardware(context: AssetExecutionContext, iso_index_hardware: PerIso) -> pa.Table:
    """The original nodes of every set: role, CPU cores, memory, disks, NICs."""
    _progress(context)
    return hardware_catalog(iso_index_hardware)


CONFIG_OUTPUTS: dict[str, str] = {name: f"Parsed configuration table {name}." for name in CONFIG_SCHEMAS}

CONFIGURATIONS_SCHEMA = pa.schema(
    [
        ("backup_set_id", pa.string()),
        ("component_id", pa.string()),
        ("key", pa.string()),
        ("value", pa.string()),  # JSON
        ("source_path", pa.string()),
        ("iso_name", pa.string()),
    ]
)


def _configurations(files: list[dict[str, Any]], documents: dict[tuple[str, str], Any]) -> pa.Table:
    rows = []
    for file in files:
        document = documents[(file["backup_set_id"], file["path"])]
        rows.append(
            {
                "backup_set_id": file["backup_set_id"],
                "component_id": file["component_id"] or "unassigned",
                "key": file["path"],
                "value": json.dumps(document, sort_keys=True, default=str),
                "source_path": file["path"],
                "iso_name": file["iso_name"],
            }
        )
    return pa.Table.from_pylist(rows, schema=CONFIGURATIONS_SCHEMA)


@multi_asset(
    name="configuration_tables",
    outs={
        **{
            name: AssetOut(
                description=description,
                io_manager_key="parquet_io_manager",
                group_name=GROUP,
                automation_condition=EAGER,
            )
            for name, description in CONFIG_OUTPUTS.items()
        },
        "configurations": AssetOut(
            description="Every configuration file of every set: path → parsed document.",
            io_manager_key="catalog_io_manager",
            group_name=GROUP,
            metadata={"pg_table": "configurations"},
            automation_condition=EAGER,
        ),
    },
    ins={"iso_config_files": AssetIn()},
    deps=[backup_sets],
    required_resource_keys={"progress"},
)
def configuration_tables(context: AssetExecutionContext, iso_config_files: PerIso) -> Iterator[Output[Any]]:
    """Parse every set's configuration files into typed tables (directors, orchestrators, apps, network)."""
    _progress(context)
    # Partitions ingested before the chunk columns existed lack them: promoted, they read as whole files.
    parts = [iso_config_files[k] for k in sorted(iso_config_files)]
    rows = pa.concat_tables(parts, promote_options="default").to_pylist() if parts else []
    files = whole_config_files(rows)
    held_by = {(f["backup_set_id"], f["path"]): f["iso_name"] for f in files}
    tables = config_tables(((f["backup_set_id"], f["path"], f["content"]) for f in files), held_by)
    documents = {(f["backup_set_id"], f["path"]): parse_document(f["path"], f["content"]) for f in files}
    for name in CONFIG_OUTPUTS:
        yield Output(tables[name], output_name=name)
    yield Output(_configurations(files, documents), output_name="configurations")


CATALOG_ASSETS = [backup_sets, isos, files, components, dependencies, hardware, configuration_tables]
