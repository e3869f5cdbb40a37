"""The Parquet IO manager through real Dagster runs: one file per partition, metadata, loading back."""

# No `from __future__ import annotations`: Dagster checks the `context` annotation of an asset at
# definition time, and a string annotation is not one of the context classes it accepts.
from pathlib import Path

import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    AssetIn,
    BackfillPolicy,
    DagsterInstance,
    DynamicPartitionsDefinition,
    asset,
    materialize,
)

from io_managers.parquet import ParquetIOManager, asset_path, read_table

PARTS = DynamicPartitionsDefinition(name="parts")


@asset(partitions_def=PARTS, io_manager_key="pq", backfill_policy=BackfillPolicy.single_run())
def per_part(context: AssetExecutionContext) -> dict[str, pa.Table]:
    return {k: pa.table({"backup_set_id": [k[:2]], "part": [k]}) for k in context.partition_keys}


@asset(io_manager_key="pq", ins={"per_part": AssetIn()})
def combined(per_part: dict[str, pa.Table]) -> pa.Table:
    return pa.concat_tables([per_part[k] for k in sorted(per_part)])


def test_partitions_one_file_each_then_combined(tmp_path: Path) -> None:
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("parts", ["s1-a", "s1-b", "s2-c"])
    resources = {"pq": ParquetIOManager(base_url=str(tmp_path / "cat"))}
    result = materialize(
        [per_part, combined],
        instance=instance,
        resources=resources,
        selection=[per_part],
        tags={"dagster/asset_partition_range_start": "s1-a", "dagster/asset_partition_range_end": "s2-c"},
    )
    assert result.success
    for key in ("s1-a", "s1-b", "s2-c"):
        assert read_table(asset_path(str(tmp_path / "cat"), ["per_part"], key)).column(
            "part"
        ).to_pylist() == [key]
    materialization = result.asset_materializations_for_node("per_part")[0]
    assert materialization.metadata["row_count"].value == 3
    assert materialization.metadata["backup_set_id"].value == "s1, s2"
    size = materialization.metadata["bytes"].value
    assert isinstance(size, int) and size > 0

    second = materialize([per_part, combined], instance=instance, resources=resources, selection=[combined])
    assert second.success
    table = read_table(str(tmp_path / "cat" / "combined.parquet"))
    assert table.column("part").to_pylist() == ["s1-a", "s1-b", "s2-c"]
    meta = second.asset_materializations_for_node("combined")[0].metadata
    path = meta["path"].value
    assert meta["row_count"].value == 3 and isinstance(path, str) and path.endswith("combined.parquet")


def test_single_partition_and_memory_url() -> None:
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("parts", ["m1-x"])
    base = "memory://catalog-test"
    result = materialize(
        [per_part], instance=instance, resources={"pq": ParquetIOManager(base_url=base)}, partition_key="m1-x"
    )
    assert result.success
    assert read_table(asset_path(base, ["per_part"], "m1-x")).num_rows == 1
