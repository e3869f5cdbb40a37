"""Catalog tables into PostgreSQL (binary COPY, one transaction per asset) and into Parquet.

How it works: `PostgresCatalogIOManager` serves the unpartitioned catalog assets. `handle_output`
gets one `pyarrow.Table` and
1. writes it as Parquet to a temporary name beside `<catalog>/<asset>.parquet`;
2. in ONE transaction deletes the rows of every backup_set_id present in the table from
   `omni.<pg_table>` and COPYs the new rows in binary (`io_managers.pg_copy.replace_rows`);
3. after the commit, moves the Parquet file into place.
So a failure anywhere (a bad value, a constraint, a lost connection) rolls PostgreSQL back to the
previous version of that set's rows and leaves the previous Parquet file too. The PostgreSQL table
is the asset's definition metadata `pg_table` (default: the asset name); an output whose metadata
says `pg_table: None` is kept in Parquet only. `load_input` reads the Parquet file. Output metadata
adds `pg_table`, `pg_rows` and `pg_rows_replaced`. The database is the workspace's
(`OMNI_RECOVERY_DATABASE_URL`, else the embedded server, started on first use), migrated once per
process before the first load.

What can go wrong: the loads of different assets are separate transactions: when `files` fails
after `isos` was loaded, `isos` holds the new rows and `files` the old ones until the next
registration; the register command runs ingest first, so a bad ISO fails before any catalog load
begins. The deferred foreign keys to `omni.backup_sets` require the `backup_sets` asset to be loaded
first (the catalog assets depend on it).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from dagster import ConfigurableIOManager, InputContext, OutputContext

from io_managers.parquet import (
    asset_path,
    commit_file,
    discard_file,
    output_tables,
    read_table,
    table_metadata,
    write_table,
)
from io_managers.pg_copy import replace_rows
from omni_recovery.db.connection import connect
from omni_recovery.db.schema import init_database
from omni_recovery.settings import Settings

__all__ = ["PostgresCatalogIOManager", "resolve_database_url"]

_migrated: set[str] = set()


def resolve_database_url(workspace: str, database_url: str | None) -> str:
    """The recovery database URL (starting the embedded server if needed), migrated once per process."""
    from pathlib import Path

    from omni_recovery.db.server import database_url as server_url

    url = server_url(Settings(workspace=Path(workspace), database_url=database_url or None))
    if url not in _migrated:
        init_database(url)
        _migrated.add(url)
    return url


class PostgresCatalogIOManager(ConfigurableIOManager):
    """Catalog tables: Parquet under `base_url` and rows in `omni.<table>` (DELETE + binary COPY)."""

    base_url: str
    workspace: str
    database_url: str | None = None

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        tables = output_tables(context, obj)
        if list(tables) != [None]:
            raise ValueError(f"{context.asset_key.to_user_string()}: catalog assets are unpartitioned")
        table = tables[None]
        if not isinstance(table, pa.Table):
            raise TypeError(f"{context.asset_key.to_user_string()}: catalog assets return a pyarrow.Table")
        key = context.asset_key.path
        target = asset_path(self.base_url, key)
        metadata = dict(context.definition_metadata or {})
        pg_table = metadata.get("pg_table", key[-1])
        tmp, size = write_table(table, target, final=False)
        try:
            extra: dict[str, Any] = {}
            if pg_table:
                url = resolve_database_url(self.workspace, self.database_url)
                with connect(url, autocommit=True) as conn:
                    result = replace_rows(conn, str(pg_table), table)
                extra = {
                    "pg_table": f"omni.{pg_table}",
                    "pg_rows": result["rows"],
                    "pg_rows_replaced": result["deleted"],
                }
        except BaseException:
            discard_file(target, tmp)
            raise
        commit_file(target, tmp)
        context.add_output_metadata({**table_metadata(tables, [target], size), **extra})

    def load_input(self, context: InputContext) -> Any:
        return read_table(asset_path(self.base_url, context.asset_key.path))
