"""The configuration tables' types (`CONFIG_SCHEMAS`), and each value fitted to its column's type.

The format names the keys of these files but rarely their value types, and other tools write sets
too, so a value that does not fit its column never fails a registration (the whole document stays
in the `configurations` table). `fit` gives each value its column's type:
- text: text as is; a date or time in ISO form; anything else as JSON text (8080 → "8080").
- integer: an integer (or a float without fraction); anything else null. float: a number, else
  null. boolean: true/false, else null. timestamp: a date-time, or RFC 3339 text (`T`/`t`,
  `Z`/`z`), else null.
- list: each item fitted to the item type; a single value becomes a one-item list. Every `ports`
  column is a list of text, since writers spell ports as numbers or as "8080/tcp", "80:8080".
Nested values without a fixed shape (env maps, placement rules, policy endpoints) are JSON text.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from typing import Any

import pyarrow as pa

from omni_recovery.backupset.layout import parse_time
from omni_recovery.errors import BackupSetError

STR, INT, FLOAT, BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()
TS = pa.timestamp("us", tz="UTC")
LS = pa.list_(pa.string())

ORCHESTRATOR_DB_TABLES = ("users", "roles", "permissions", "app_definitions", "cluster_policies")


def table_schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([("backup_set_id", STR), *fields])


CONFIG_SCHEMAS: dict[str, pa.Schema] = {
    "directors": table_schema(
        ("director_id", STR),
        ("ring_id", STR),
        ("node", STR),
        ("management_address", STR),
        ("storage_address", STR),
        ("ring_peers", LS),
        ("storage_paths", STR),
        ("reserved_cpu_cores", INT),
        ("reserved_memory_mib", INT),
        ("source_path", STR),
    ),
    "director_vms": table_schema(
        ("director_id", STR),
        ("vm_id", STR),
        ("name", STR),
        ("role", STR),
        ("cpu", FLOAT),
        ("memory_mib", INT),
        ("disk_gib", INT),
        ("image", STR),
        ("networks", STR),
        ("source_path", STR),
    ),
    "director_history": table_schema(("director_id", STR), ("at", TS), ("event", STR), ("detail", STR)),
    "director_hardware": table_schema(
        ("director_id", STR),
        ("hostname", STR),
        ("role", STR),
        ("cpu_cores", INT),
        ("memory_mib", INT),
        ("disks", STR),
        ("nics", STR),
        ("source_path", STR),
    ),
    "orchestrators": table_schema(
        ("orchestrator_id", STR),
        ("cluster_id", STR),
        ("vm_id", STR),
        ("director", STR),
        ("address", STR),
        ("peers", LS),
        ("placement_strategy", STR),
        ("placement_zones", LS),
        ("placement", STR),
        ("source_path", STR),
    ),
    "orchestrator_db_columns": table_schema(
        ("orchestrator_id", STR),
        ("table_name", STR),
        ("column_name", STR),
        ("column_type", STR),
    ),
    "orchestrator_db_rows": table_schema(
        ("orchestrator_id", STR),
        ("table_name", STR),
        ("row_number", INT),
        ("record", STR),
        ("source_path", STR),
    ),
    "applications": table_schema(
        ("name", STR),
        ("priority", STR),
        ("orchestrator", STR),
        ("version", STR),
        ("vm", STR),
        ("depends_on", LS),
        ("depends_on_strength", LS),
        ("container_count", INT),
        ("volume_count", INT),
        ("source_path", STR),
    ),
    "application_containers": table_schema(
        ("application", STR),
        ("name", STR),
        ("image", STR),
        ("cpu", FLOAT),
        ("memory_mib", INT),
        ("replicas", INT),
        ("ports", LS),
        ("env", STR),
        ("secret_refs", LS),
    ),
    "application_volumes": table_schema(("application", STR), ("name", STR), ("mount_path", STR)),
    "services": table_schema(
        ("name", STR),
        ("category", STR),
        ("role", STR),
        ("vm", STR),
        ("version", STR),
        ("ports", LS),
        ("depends_on", LS),
        ("depends_on_strength", LS),
        ("source_path", STR),
    ),
    "volumes": table_schema(
        ("application", STR),
        ("name", STR),
        ("size_gib", FLOAT),
        ("storage_class", STR),
        ("mount_path", STR),
        ("source_path", STR),
        ("config_path", STR),
    ),
    "network_subnets": table_schema(
        ("name", STR), ("cidr", STR), ("gateway", STR), ("vlan", INT), ("purpose", STR)
    ),
    "network_routes": table_schema(
        ("destination", STR),
        ("gateway", STR),
        ("subnet", STR),
        ("metric", INT),
        ("description", STR),
    ),
    "network_policies": table_schema(
        ("name", STR),
        ("action", STR),
        ("source", STR),
        ("destination", STR),
        ("protocol", STR),
        ("ports", LS),
    ),
    "dns_records": table_schema(
        ("zone", STR),
        ("name", STR),
        ("type", STR),
        ("address", STR),
        ("component_id", STR),
        ("ttl", INT),
    ),
    "network_links": table_schema(("source", STR), ("destination", STR), ("protocol", STR), ("ports", LS)),
}
for _db_table in ORCHESTRATOR_DB_TABLES:
    CONFIG_SCHEMAS[f"orchestrator_db_{_db_table}"] = table_schema(
        ("orchestrator_id", STR)
    )  # widened per schema.json

DB_TYPES: dict[str, pa.DataType] = {
    "text": STR,
    "integer": INT,
    "bigint": INT,
    "boolean": BOOL,
    "timestamp": TS,
    "json": STR,
    "float": FLOAT,
    "double": FLOAT,
}


def json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def fit(value: Any, kind: pa.DataType) -> Any:
    """`value` as its column's type, or null when it has another (the rule in the module docstring)."""
    if value is None:
        return None
    if pa.types.is_list(kind):
        return [fit(item, kind.value_type) for item in (value if isinstance(value, list) else [value])]
    if kind == STR:
        return value if isinstance(value, str) else _text(value)
    if kind == INT:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return value if _is_int(value) and -(2**63) <= value < 2**63 else None
    if kind == FLOAT:
        return float(value) if _is_int(value) or isinstance(value, float) else None
    if kind == BOOL:
        return value if isinstance(value, bool) else None
    if kind == TS:
        return _time(value)
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any) -> str | None:
    if isinstance(value, date | time):  # YAML reads unquoted dates and times as such
        return value.isoformat()
    return json_text(value)


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    try:
        return parse_time(value) if isinstance(value, str) else None
    except ValueError:
        return None


def typed_table(name: str, rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    fitted = [{f.name: fit(row.get(f.name), f.type) for f in schema} for row in rows]
    try:
        return pa.Table.from_pylist(fitted, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        where = next((r.get("source_path") for r in rows if r.get("source_path")), None)
        raise BackupSetError(
            f"configuration table {name}: a value has the wrong type: {exc}", path=where
        ) from exc
