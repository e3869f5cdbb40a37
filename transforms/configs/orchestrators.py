"""Orchestrator rows: each config.yaml, the columns db/schema.json declares and every database row.

`db/schema.json` is read as `{"tables": {table: {"columns": {column: type}}}}`, where tables and
columns may also be lists of objects with a `name`, and a type may be an object with a `type`. A
type other than text, integer, bigint, boolean, timestamp, json, float, double (any case) is text;
a schema of any other shape is ignored. Each orchestrator table (`db/<table>.jsonl`) gets the
columns its schema declares, then every other key of its rows as text (`config_tables` builds it).
"""

from __future__ import annotations

from typing import Any

from transforms.configs.rows import Tables, listed, mapping
from transforms.configs.schemas import DB_TYPES, STR, json_text


def orchestrator_rows(t: Tables, sid: str, ident: str, rest: str, path: str, doc: Any) -> None:
    if rest == "config.yaml":
        d = mapping(doc, path)
        placement = d.get("placement")
        rules = placement if isinstance(placement, dict) else {}
        t.add(
            "orchestrators",
            {
                "backup_set_id": sid,
                "orchestrator_id": d.get("orchestrator_id", ident),
                "cluster_id": d.get("cluster_id"),
                "vm_id": d.get("vm_id"),
                "director": d.get("director"),
                "address": d.get("address"),
                "peers": d.get("peers"),
                "placement_strategy": rules.get("strategy"),
                "placement_zones": rules.get("zones"),
                "placement": json_text(placement),
                "source_path": path,
            },
        )
    elif rest == "db/schema.json":
        for table, columns in _db_schema(doc).items():
            for column, kind in columns.items():
                t.add(
                    "orchestrator_db_columns",
                    {
                        "backup_set_id": sid,
                        "orchestrator_id": ident,
                        "table_name": table,
                        "column_name": column,
                        "column_type": kind,
                    },
                )
            t.db_schemas[f"{sid}\x00{ident}\x00{table}"] = {
                c: DB_TYPES.get(str(k).lower(), STR) for c, k in columns.items() if c not in DB_KEYS
            }
    elif rest.startswith("db/") and rest.endswith(".jsonl"):
        table = rest[3:-6]
        for number, record in enumerate(listed(doc, path, "rows")):
            record = mapping(record, path)
            t.add(
                "orchestrator_db_rows",
                {
                    "backup_set_id": sid,
                    "orchestrator_id": ident,
                    "table_name": table,
                    "row_number": number,
                    "record": json_text(record),
                    "source_path": path,
                },
            )
            t.add(f"\x00db\x00{table}", {**record, "backup_set_id": sid, "orchestrator_id": ident})


DB_KEYS = ("backup_set_id", "orchestrator_id")  # the catalog's own columns of every orchestrator table


def _db_schema(doc: Any) -> dict[str, dict[str, Any]]:
    """table → column → declared type from db/schema.json; tables of an unknown shape are left out."""
    tables = _named(doc.get("tables")) if isinstance(doc, dict) else {}
    out: dict[str, dict[str, Any]] = {}
    for table, spec in tables.items():
        columns = _named(spec.get("columns")) if isinstance(spec, dict) else {}
        if columns:
            out[table] = {column: _column_type(kind) for column, kind in columns.items()}
    return out


def _named(value: Any) -> dict[str, Any]:
    """name → spec from a mapping or a list of objects with a `name`; {} for any other shape."""
    if isinstance(value, dict):
        return {str(name): spec for name, spec in value.items()}
    if isinstance(value, list):
        return {str(i["name"]): i for i in value if isinstance(i, dict) and i.get("name") is not None}
    return {}


def _column_type(kind: Any) -> str | None:
    if isinstance(kind, dict):
        kind = kind.get("type")
    return kind if isinstance(kind, str) else None
