"""Catalog tables: one ISO's manifest, directory records, backup_info and index as Arrow tables,
and the set-wide catalog tables (isos, files, components, dependencies, hardware) built from them.

`schemas` holds every table's explicit types (`*_SCHEMA`); `manifest` reads and checks a manifest
column-wise; `per_iso` gives an ISO's other tables (its directory listing arrives as plain rows, so
nothing here reads an image); `set_wide` joins and unions them into the catalog. No Dagster: assets
call these functions, tests call them directly. Every error names the ISO and, when known, the path.
"""

from transforms.catalog_tables.manifest import manifest_table
from transforms.catalog_tables.per_iso import backup_info_table, directory_records_table, index_tables
from transforms.catalog_tables.schemas import (
    BACKUP_INFO_SCHEMA,
    BACKUP_SETS_SCHEMA,
    COMPONENTS_SCHEMA,
    DEPENDENCIES_SCHEMA,
    DIRECTORY_RECORDS_SCHEMA,
    FILES_SCHEMA,
    HARDWARE_SCHEMA,
    INDEX_FILES_SCHEMA,
    ISOS_SCHEMA,
    MANIFEST_SCHEMA,
)
from transforms.catalog_tables.set_wide import (
    backup_sets_catalog,
    components_catalog,
    dependencies_catalog,
    files_catalog,
    hardware_catalog,
    iso_files,
    isos_catalog,
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
