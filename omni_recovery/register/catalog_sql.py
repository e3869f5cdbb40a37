"""SQL over the catalog: DuckDB views of the Parquet catalog tables, for `omni-recovery sql`.

How it works: `open_catalog(base_url)` opens an in-memory DuckDB database and creates one view
per catalog table found under the catalog folder: `<base>/<name>.parquet` becomes view `<name>`
(isos, files, components, dependencies, hardware, backup_sets, configurations, directors, ...)
and a folder `<base>/<name>/` of partition files becomes view `<name>` over all of them
(iso_manifest, iso_directory_records, ...: the per-ISO ingest tables). Local folders are read
directly; other fsspec URLs through DuckDB's fsspec bridge. `run_query` returns the column names
and rows; `format_result` prints them as an aligned table, CSV or JSON lines.

The same tables are in PostgreSQL (schema `omni`) for psql and BI tools; DuckDB needs no server.

What can go wrong: an empty or missing catalog folder (nothing registered yet) gives a clear
`RecoveryError`; a query error is reported with DuckDB's message as a `RecoveryError`. Views are
read-only: the catalog is changed only by registering.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import fsspec

from omni_recovery.errors import RecoveryError
from omni_recovery.safe_text import safe_text

__all__ = ["format_result", "open_catalog", "run_query", "table_names"]

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def table_names(base_url: str) -> dict[str, str]:
    """View name → Parquet path or glob, for every catalog table under `base_url`."""
    fs, root = fsspec.core.url_to_fs(base_url)
    if not fs.isdir(root):
        return {}
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    local = protocol in ("file", "local")
    found: dict[str, str] = {}
    for info in fs.ls(root, detail=True):
        base = posixpath.basename(info["name"].rstrip("/"))
        if info["type"] == "file" and base.endswith(".parquet"):
            name, target = base[: -len(".parquet")], info["name"]
        elif info["type"] == "directory" and any(
            p.endswith(".parquet") for p in fs.ls(info["name"], detail=False)
        ):
            name, target = base, posixpath.join(info["name"], "*.parquet")
        else:
            continue
        if _NAME.match(name):
            found[name] = target if local else f"{protocol}://{target}"
    return found


def open_catalog(base_url: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per catalog table."""
    tables = table_names(base_url)
    if not tables:
        raise RecoveryError(
            f"the catalog at {base_url} is empty: register a backup set first "
            "(omni-recovery register-isos --path FOLDER)"
        )
    conn = duckdb.connect(":memory:")
    fs, _ = fsspec.core.url_to_fs(base_url)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol not in ("file", "local"):
        conn.register_filesystem(fs)
    for name, target in sorted(tables.items()):
        literal = target.replace("'", "''")
        conn.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{literal}', union_by_name = true)")
    return conn


def run_query(base_url: str, query: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one SQL query over the catalog; returns (column names, rows)."""
    conn = open_catalog(base_url)
    try:
        cursor = conn.execute(query)
        columns = [d[0] for d in cursor.description or []]
        return columns, cursor.fetchall()
    except duckdb.Error as exc:
        raise RecoveryError(f"query failed: {exc}") from exc
    finally:
        conn.close()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def format_result(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "table") -> str:
    """Rows as `table` (aligned columns), `csv` or `json` (one object per line)."""
    if fmt == "json":
        return "\n".join(json.dumps(dict(zip(columns, map(_plain, row), strict=True))) for row in rows)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_cell(v) for v in row] for row in rows])
        return out.getvalue().rstrip("\n")
    if fmt != "table":
        raise RecoveryError(f"unknown output format {fmt!r}: use table, csv or json")
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    numeric = [
        all(isinstance(row[i], int | float | Decimal) or row[i] is None for row in rows)
        for i in range(len(columns))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    body = [line(list(columns)), "  ".join("-" * w for w in widths)]
    body += [line(row) for row in cells]
    body.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(body)


def _cell(value: Any) -> str:
    """A table or CSV cell, printed: a set's content (a path, a name) escaped (safe_text)."""
    if value is None:
        return ""
    plain = _plain(value)
    if isinstance(plain, list | dict):
        return json.dumps(plain)
    return safe_text(str(plain))
