"""Binary COPY: a set's rows are replaced in one transaction; a failure mid-load changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from dagster import asset, materialize

from io_managers import pg_copy
from io_managers.parquet import read_table
from io_managers.postgres import PostgresCatalogIOManager
from omni_recovery.db.connection import connect
from omni_recovery.errors import DatabaseError
from transforms.catalog_tables import BACKUP_SETS_SCHEMA, FILES_SCHEMA


def _set_row(set_id: str) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "backup_set_id": set_id,
                "created_at": datetime(2026, 11, 20, 2, tzinfo=UTC),
                "omnicloud_version": "4.2.1",
                "source_environment": '{"name": "x"}',
                "signer_key_id": None,
                "iso_count": 1,
            }
        ],
        schema=BACKUP_SETS_SCHEMA,
    )


def _files(set_id: str, n: int, *, bad_row: int | None = None) -> pa.Table:
    rows = [
        {
            "backup_set_id": set_id,
            "iso_name": f"{set_id}_volume-data_001.iso",
            "path": f"data/volumes/a/v/files/f{i:06d}",
            "type": "file",
            "size": -1 if i == bad_row else i,
            "sha256": "a" * 64,
            "mode": 33188,
            "mtime": None,
            "target": None,
            "component_id": "volume:a/v",
            "chunk_of": None,
            "chunk_index": None,
            "chunk_count": None,
            "logical_size": None,
            "logical_sha256": None,
            "encrypted": i % 2 == 0,
            "encryption": '{"alg": "AES-256-GCM"}' if i % 2 == 0 else None,
            "extent_offset": 2048 * i,
        }
        for i in range(n)
    ]
    return pa.Table.from_pylist(rows, schema=FILES_SCHEMA)


def _count(url: str, set_id: str) -> int:
    with connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM omni.files WHERE backup_set_id = %s", (set_id,)).fetchone()
    assert row is not None
    return int(row[0])


def test_replace_rows_is_idempotent_and_types_jsonb(catalog_database_url: str) -> None:
    with connect(catalog_database_url, autocommit=True) as conn:
        pg_copy.replace_rows(conn, "backup_sets", _set_row("pg1"))
        first = pg_copy.replace_rows(conn, "files", _files("pg1", 10))
        again = pg_copy.replace_rows(conn, "files", _files("pg1", 10))
        assert (first["rows"], first["deleted"], again["deleted"]) == (10, 0, 10)
        alg = conn.execute(
            "SELECT encryption->>'alg' FROM omni.files WHERE backup_set_id = 'pg1' AND encrypted LIMIT 1"
        ).fetchone()
        assert alg == ("AES-256-GCM",)
    assert _count(catalog_database_url, "pg1") == 10


def test_failure_mid_load_rolls_back(catalog_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with connect(catalog_database_url, autocommit=True) as conn:
        pg_copy.replace_rows(conn, "backup_sets", _set_row("pg2"))
        pg_copy.replace_rows(conn, "files", _files("pg2", 7))
    monkeypatch.setattr(pg_copy, "BATCH_ROWS", 5)
    batches: list[int] = []

    def fail_on_second(n: int) -> None:
        batches.append(n)
        if len(batches) == 2:
            raise RuntimeError("connection lost (simulated)")

    with connect(catalog_database_url, autocommit=True) as conn:
        with pytest.raises(RuntimeError, match="simulated"):
            pg_copy.replace_rows(conn, "files", _files("pg2", 20), on_batch=fail_on_second)
        with pytest.raises(DatabaseError, match="rolled back"):
            pg_copy.replace_rows(conn, "files", _files("pg2", 20, bad_row=13))
    assert batches == [5, 5]
    assert _count(catalog_database_url, "pg2") == 7


def test_io_manager_keeps_previous_parquet_and_rows_on_failure(
    catalog_database_url: str, tmp_path: Path
) -> None:
    manager = PostgresCatalogIOManager(
        base_url=str(tmp_path / "catalog"), workspace=str(tmp_path), database_url=catalog_database_url
    )
    state = {"bad": False}

    @asset(io_manager_key="catalog", metadata={"pg_table": "backup_sets"})
    def backup_sets() -> pa.Table:
        return _set_row("pg3")

    @asset(io_manager_key="catalog", deps=[backup_sets])
    def files() -> pa.Table:
        return _files("pg3", 30, bad_row=25 if state["bad"] else None)

    good = materialize([backup_sets, files], resources={"catalog": manager})
    assert good.success
    meta = good.asset_materializations_for_node("files")[0].metadata
    assert (
        meta["pg_rows"].value == 30 and meta["row_count"].value == 30 and meta["backup_set_id"].value == "pg3"
    )
    state["bad"] = True
    bad = materialize([backup_sets, files], resources={"catalog": manager}, raise_on_error=False)
    assert not bad.success
    assert _count(catalog_database_url, "pg3") == 30
    table = read_table(str(tmp_path / "catalog" / "files.parquet"))
    assert table.num_rows == 30 and min(table.column("size").to_pylist()) == 0
    assert not list((tmp_path / "catalog").glob("*.tmp-*"))


def test_parent_row_is_checked_once_and_still_enforced(catalog_database_url: str) -> None:
    with connect(catalog_database_url, autocommit=True) as conn:
        pg_copy.replace_rows(conn, "backup_sets", _set_row("pg4"))
        loaded = pg_copy.replace_rows(conn, "files", _files("pg4", 12))
        assert loaded["parent_check"] == "once" and loaded["rows"] == 12
        # without its backup_sets row, the rows are checked by PostgreSQL as usual and refused at commit
        with pytest.raises(DatabaseError, match="foreign key"):
            pg_copy.replace_rows(conn, "files", _files("orphan", 3))
        slow = pg_copy.replace_rows(conn, "files", _files("pg4", 12), fast_parent_check=False)
        assert slow["parent_check"] == "per row"
        role = conn.execute("SHOW session_replication_role").fetchone()
        assert role == ("origin",)
    assert _count(catalog_database_url, "pg4") == 12
    assert _count(catalog_database_url, "orphan") == 0
