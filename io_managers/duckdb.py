"""DuckDB for local SQL over the catalog, as a resource assets can ask for.

How it works: `DuckDBCatalog(base_url=...)` opens `omni_recovery.catalog_sql.open_catalog` on the
Parquet catalog: one view per catalog table (files, components, ...). `query(sql)` returns a
pyarrow Table, so a later stage (planning, reporting) asks SQL questions of the catalog without a
database server. Each call opens a fresh in-memory connection: nothing is cached between calls,
so a query always sees the latest materialised catalog.

What can go wrong: an empty catalog (nothing registered) raises `RecoveryError`; a bad query
raises DuckDB's error.
"""

from __future__ import annotations

import pyarrow as pa
from dagster import ConfigurableResource

from omni_recovery.catalog_sql import open_catalog

__all__ = ["DuckDBCatalog"]


class DuckDBCatalog(ConfigurableResource):
    """SQL over the Parquet catalog under `base_url` (views named after the catalog tables)."""

    base_url: str

    def query(self, sql: str) -> pa.Table:
        conn = open_catalog(self.base_url)
        try:
            return conn.sql(sql).to_arrow_table()
        finally:
            conn.close()
