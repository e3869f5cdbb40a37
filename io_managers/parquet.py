"""Arrow tables as Parquet files on any fsspec URL, one file per asset (and per partition).

How it works: `ParquetIOManager(base_url=...)` stores an unpartitioned asset `a/b` at
`<base>/a/b.parquet` and partition `k` of a partitioned asset at `<base>/a/b/<k>.parquet`.
`handle_output` takes a `pyarrow.Table`, or, for a run covering several partitions (a single-run
backfill), a dict partition key → Table; an asset may hand over a `StagedParquet` it already wrote
with `stage_table` instead (so a step over many partitions holds one in memory at a time), which is
then only moved into place. Each file is written to `<name>.tmp-<random>` and moved over the old one,
so a reader sees the old or the new file, never half of one. Output metadata: `row_count`, `bytes`,
`path`, `partitions` and `backup_set_id` (the ids of the table's `backup_set_id` column, if any).
`load_input` returns a Table, or a dict partition key → Table when the input spans several
partitions (an unpartitioned catalog asset reading every ISO's ingest table). The file helpers
(`write_table`, `read_table`, `asset_path`) are plain functions, also used by the PostgreSQL IO
manager and by the `files` catalog asset, which reads one ISO at a time.

What can go wrong: a partition registered but never materialised has no file: loading it raises a
`FileNotFoundError` that names the path. A partition key with `/` in it is refused (keys are ISO
file names). The move over the old file is atomic on local filesystems; on object stores it is a copy
then delete. A process killed between staging and the move leaves a `*.parquet.tmp-*` file behind,
which no reader (nor the `*.parquet` globs of the SQL views) sees.
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import ConfigurableIOManager, InputContext, OutputContext

__all__ = [
    "ParquetIOManager",
    "StagedParquet",
    "asset_path",
    "read_table",
    "set_ids",
    "stage_table",
    "write_table",
]


def asset_path(base_url: str, key: Sequence[str], partition: str | None = None) -> str:
    """Where an asset (or one partition of it) lives under `base_url`."""
    folder = posixpath.join(base_url.rstrip("/"), *key)
    if partition is None:
        return folder + ".parquet"
    if "/" in partition or partition in ("", ".", ".."):
        raise ValueError(f"partition key {partition!r} cannot be a file name")
    return posixpath.join(folder, f"{partition}.parquet")


def write_table(table: pa.Table, url: str, *, final: bool = True) -> tuple[str, int]:
    """Write `table` to `url` through a temporary name; returns (path written, bytes).

    With final=False the temporary path is returned and left for the caller to `commit_file`."""
    fs, path = fsspec.core.url_to_fs(url)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with fs.open(tmp, "wb") as out:
            pq.write_table(table, out, compression="zstd")
        size = int(fs.size(tmp))
        if final:
            fs.mv(tmp, path)
            return path, size
        return tmp, size
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise


def commit_file(url: str, tmp: str) -> None:
    """Move a temporary file written by `write_table(final=False)` over `url`."""
    fs, path = fsspec.core.url_to_fs(url)
    fs.mv(tmp, path)


def discard_file(url: str, tmp: str) -> None:
    """Remove a temporary file written by `write_table(final=False)`."""
    fs, _ = fsspec.core.url_to_fs(url)
    if fs.exists(tmp):
        fs.rm(tmp)


def read_table(url: str, columns: Sequence[str] | None = None) -> pa.Table:
    """Read one Parquet file (optionally some columns); FileNotFoundError names a missing file."""
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        raise FileNotFoundError(f"no Parquet file at {url}: was the asset (partition) materialised?")
    with fs.open(path, "rb") as src:
        return pq.read_table(src, columns=list(columns) if columns is not None else None)


def set_ids(table: pa.Table) -> list[str]:
    """The distinct backup_set_id values of a table (empty when it has no such column)."""
    if "backup_set_id" not in table.column_names:
        return []
    return sorted(v for v in pc.unique(table.column("backup_set_id")).to_pylist() if v is not None)


@dataclass(frozen=True)
class StagedParquet:
    """A table an asset already wrote beside its final place (`stage_table`); the IO manager moves it in.

    Lets a step that produces many partitions keep one partition in memory at a time."""

    final_url: str
    staged_path: str
    rows: int
    size: int
    backup_set_ids: tuple[str, ...]

    def discard(self) -> None:
        discard_file(self.final_url, self.staged_path)


def stage_table(table: pa.Table, final_url: str) -> StagedParquet:
    """Write `table` to a temporary name beside `final_url`, for an IO manager to move into place."""
    staged, size = write_table(table, final_url, final=False)
    return StagedParquet(final_url, staged, table.num_rows, size, tuple(set_ids(table)))


Value: TypeAlias = pa.Table | StagedParquet


def output_tables(context: OutputContext, obj: Any) -> dict[str | None, Value]:
    """The tables of one output by partition key (None for an unpartitioned asset)."""
    if isinstance(obj, Mapping):
        keys = set(context.asset_partition_keys) if context.has_asset_partitions else set()
        if set(obj) != keys:
            raise ValueError(
                f"{context.asset_key.to_user_string()}: the output holds partitions {sorted(obj)}, "
                f"the run covers {sorted(keys)}"
            )
        return {str(k): _table(context, v) for k, v in obj.items()}
    if context.has_asset_partitions:
        partition_keys = list(context.asset_partition_keys)
        if len(partition_keys) != 1:
            raise ValueError(
                f"{context.asset_key.to_user_string()}: a run over {len(partition_keys)} partitions "
                "must return a dict partition key → table"
            )
        return {partition_keys[0]: _table(context, obj)}
    return {None: _table(context, obj)}


def _table(context: OutputContext, obj: Any) -> Value:
    if not isinstance(obj, pa.Table | StagedParquet):
        raise TypeError(f"{context.asset_key.to_user_string()}: expected a pyarrow.Table, got {type(obj)}")
    return obj


def _rows_and_ids(value: Value) -> tuple[int, list[str]]:
    if isinstance(value, StagedParquet):
        return value.rows, list(value.backup_set_ids)
    return value.num_rows, set_ids(value)


def table_metadata(tables: Mapping[str | None, Value], paths: Sequence[str], size: int) -> dict[str, Any]:
    """Materialisation metadata of one output: rows, bytes, path(s), partitions, backup_set_id."""
    described = [_rows_and_ids(t) for t in tables.values()]
    ids = sorted({i for _, found in described for i in found})
    meta: dict[str, Any] = {
        "row_count": sum(rows for rows, _ in described),
        "bytes": size,
        "path": paths[0] if len(paths) == 1 else posixpath.dirname(paths[0]),
        "backup_set_id": ", ".join(ids),
    }
    if len(tables) > 1 or None not in tables:
        meta["partitions"] = len(tables)
    return meta


class ParquetIOManager(ConfigurableIOManager):
    """Arrow tables as Parquet at `<base_url>/<asset key>[/<partition>].parquet` on any fsspec URL."""

    base_url: str

    def path_for(self, key: Sequence[str], partition: str | None = None) -> str:
        return asset_path(self.base_url, key, partition)

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        tables = output_tables(context, obj)
        key = context.asset_key.path
        paths, size = [], 0
        for partition, value in tables.items():
            target = self.path_for(key, partition)
            if isinstance(value, StagedParquet):
                commit_file(target, value.staged_path)
                path, written = target, value.size
            else:
                path, written = write_table(value, target)
            paths.append(path)
            size += written
        context.add_output_metadata(table_metadata(tables, paths, size))

    def load_input(self, context: InputContext) -> Any:
        key = context.asset_key.path
        if context.has_asset_partitions:
            keys = list(context.asset_partition_keys)
            if len(keys) == 1 and not _wants_mapping(context):
                return read_table(self.path_for(key, keys[0]))
            return {k: read_table(self.path_for(key, k)) for k in sorted(keys)}
        return read_table(self.path_for(key))


def _wants_mapping(context: InputContext) -> bool:
    """An unpartitioned consumer of a partitioned asset always gets a dict, even of one partition."""
    return not context.has_partition_key
