"""Loading catalog rows into PostgreSQL: our binary COPY path beside `psql \\copy`, same rows, same server.

Run: python bench/catalog_load.py [--rows 1000000] [--repeat 3] [--database-url URL]

Makes ROWS rows of `omni.files` (the widest catalog table: paths, sha256, sizes, modes, times,
components, extents, encryption JSON for a quarter of them) as one Arrow table, then in the same
run, alternating, REPEAT times each, into the same (emptied) table of the same server:

  ours      io_managers.pg_copy.replace_rows: DELETE the set's rows + binary COPY with set_types,
            one transaction (what the catalog IO manager does)
  psql      `psql URL -c "\\copy omni.files (...) FROM 'rows.csv' (FORMAT csv, HEADER)"` of the
            same rows written beforehand as CSV (writing the CSV is not timed)

and prints the median wall time and rows/s of each, and the ratio ours/psql (below 1 = faster).
The same pair is then run into `omni.bench_plain`, a copy of omni.files' columns and checks
without indexes or foreign key, where the server's own work is smallest and the loaders' cost
shows most.
Without --database-url an embedded server is started in a temporary workspace and stopped at
the end. Peak RSS of this process is printed too (it holds the Arrow table and one batch).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from psql_copy import timed_psql

from io_managers.pg_copy import replace_rows
from omni_recovery.db.connection import connect
from omni_recovery.db.schema import init_database
from omni_recovery.db.server import database_url, stop_embedded
from omni_recovery.settings import Settings
from transforms.catalog_tables import BACKUP_SETS_SCHEMA, FILES_SCHEMA

SET_ID = "bench-load"
TARGETS = {
    "files": "omni.files (the catalog table: 4 indexes, deferred foreign key)",
    "bench_plain": "omni.bench_plain (same columns and checks, no index, no foreign key)",
}


def make_rows(n: int) -> pa.Table:
    """`n` realistic omni.files rows, built column-wise."""
    i = pa.array(range(n), pa.int64())
    apps = pc.cast(pc.divide(i, 20_000), pa.string())
    dirs = pc.cast(pc.divide(i, 1000), pa.string())
    path = pc.binary_join_element_wise(
        "data/volumes/app", apps, "/pgdata/files/base/", dirs, "/", pc.cast(i, pa.string()), ""
    )
    sha = pc.utf8_slice_codeunits(
        pc.binary_join_element_wise(pc.cast(pc.multiply(i, 2654435761), pa.string()), "0" * 64, ""), 0, 64
    )
    encrypted = pc.equal(pc.bit_wise_and(i, 3), 0)
    encryption = pc.if_else(
        encrypted,
        pa.scalar('{"alg":"AES-256-GCM","key_id":"a13c12ebc9da4f97","nonce":"US0VDwZl8nEdDcS7"}'),
        pa.scalar(None, pa.string()),
    )
    mtime = pa.array([datetime(2026, 11, 20, 2, tzinfo=UTC)] * n, pa.timestamp("us", tz="UTC"))
    columns = {
        "backup_set_id": pa.array([SET_ID] * n, pa.string()),
        "iso_name": pc.binary_join_element_wise(
            f"{SET_ID}_volume-data_",
            pc.utf8_lpad(pc.cast(pc.divide(i, 10_000), pa.string()), 3, "0"),
            ".iso",
            "",
        ),
        "path": path,
        "type": pa.array(["file"] * n, pa.string()),
        "size": pc.multiply(pc.bit_wise_and(i, 1023), 8192),
        "sha256": sha,
        "mode": pa.array([33188] * n, pa.int32()),
        "mtime": mtime,
        "target": pa.nulls(n, pa.string()),
        "component_id": pc.binary_join_element_wise("volume:app", apps, "/pgdata", ""),
        "chunk_of": pa.nulls(n, pa.string()),
        "chunk_index": pa.nulls(n, pa.int32()),
        "chunk_count": pa.nulls(n, pa.int32()),
        "logical_size": pa.nulls(n, pa.int64()),
        "logical_sha256": pa.nulls(n, pa.string()),
        "encrypted": encrypted,
        "encryption": encryption,
        "extent_offset": pc.multiply(i, 2048),
    }
    return pa.table(columns).cast(FILES_SCHEMA)


def clear(url: str, target: str = "files") -> None:
    with connect(url, autocommit=True) as conn:
        conn.execute(f"DELETE FROM omni.{target} WHERE backup_set_id = %s", (SET_ID,))
        conn.execute(f"VACUUM omni.{target}")


def load_ours(url: str, table: pa.Table, target: str = "files") -> float:
    start = time.perf_counter()
    with connect(url, autocommit=True) as conn:
        result = replace_rows(conn, target, table)
    elapsed = time.perf_counter() - start
    assert result["rows"] == table.num_rows
    return elapsed


def load_psql(url: str, csv_path: Path, columns: list[str], rows: int, target: str = "files") -> float:
    command = f"\\copy omni.{target} ({', '.join(columns)}) FROM '{csv_path}' (FORMAT csv, HEADER true)"
    elapsed, output = timed_psql(url, command)
    if f"COPY {rows}" not in output and output.strip():
        print(f"psql said: {output.strip()}", file=sys.stderr)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("OMNI_RECOVERY_DATABASE_URL"))
    args = parser.parse_args()
    if shutil.which("psql") is None:
        raise SystemExit("psql is not installed: the baseline needs it")

    work = Path(tempfile.mkdtemp(prefix="omni-bench-load-"))
    settings = Settings(workspace=work / "ws", database_url=args.database_url)
    try:
        url = database_url(settings)
        init_database(url)
        started = time.perf_counter()
        table = make_rows(args.rows)
        took = time.perf_counter() - started
        print(f"{args.rows} rows generated in {took:.1f} s ({table.nbytes / 2**20:.0f} MiB)")
        csv_path = work / "rows.csv"
        pacsv.write_csv(table, csv_path)
        print(f"CSV for psql: {csv_path.stat().st_size / 2**20:.0f} MiB")
        with connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM omni.files WHERE backup_set_id = %s", (SET_ID,))
            replace_rows(
                conn,
                "backup_sets",
                pa.Table.from_pylist(
                    [
                        {
                            "backup_set_id": SET_ID,
                            "created_at": datetime.now(UTC),
                            "omnicloud_version": "bench",
                            "source_environment": "{}",
                            "signer_key_id": None,
                            "iso_count": 1,
                        }
                    ],
                    schema=BACKUP_SETS_SCHEMA,
                ),
            )
        with connect(url, autocommit=True) as conn:
            conn.execute(
                "SET client_min_messages = warning; DROP TABLE IF EXISTS omni.bench_plain; "
                "CREATE TABLE omni.bench_plain (LIKE omni.files INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            )
        results: dict[str, tuple[float, float]] = {}
        for target, what in TARGETS.items():
            ours: list[float] = []
            psql: list[float] = []
            for trial in range(args.repeat):
                clear(url, target)
                ours.append(load_ours(url, table, target))
                clear(url, target)
                psql.append(load_psql(url, csv_path, FILES_SCHEMA.names, args.rows, target))
                print(f"{what}, trial {trial + 1}: ours {ours[-1]:.2f} s, psql \\copy {psql[-1]:.2f} s")
            clear(url, target)
            results[target] = (statistics.median(ours), statistics.median(psql))
        with connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE omni.bench_plain")
            conn.execute("DELETE FROM omni.backup_sets WHERE backup_set_id = %s", (SET_ID,))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        for target, (o, p) in results.items():
            print()
            print(f"into {TARGETS[target]}, {args.rows} rows, median of {args.repeat}:")
            print(f"  {'loader':<34} {'seconds':>9} {'rows/s':>12}")
            print(f"  {'ours: binary COPY (pg_copy)':<34} {o:>9.2f} {args.rows / o:>12,.0f}")
            baseline = "baseline: psql \\copy csv"
            print(f"  {baseline:<34} {p:>9.2f} {args.rows / p:>12,.0f}")
            print(f"  ratio ours/psql time: {o / p:.2f}  ({p / o:.2f}x the rows per second)")
        print(f"\npeak RSS of this process: {peak / 2**20:.0f} MiB")
    finally:
        if args.database_url is None:
            stop_embedded(settings)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
