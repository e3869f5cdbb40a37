"""Configuration files of a backup set (YAML, JSON, JSON lines) as typed Arrow tables.

How it works
------------
`is_config_path(path)` says which files of an ISO are configuration (everything under `data/`
that is YAML or JSON, except volume file trees, key material and encrypted files);
`whole_config_files(rows)` joins the parts of one that a writer chunked.
`config_tables(documents)` takes `(backup_set_id, path, bytes)` triples, dispatches each on its
path (the layout of `data/` in backup-format.md) and returns one table per name of
`CONFIG_SCHEMAS`: directors and their VMs, orchestrators, every orchestrator database table
(typed from its `db/schema.json`: text, integer, boolean, timestamp, json), applications with
their containers and volumes, core services, volumes, and the network (subnets, routes, policies,
DNS records, connectivity links). Nested values that have no fixed shape (env maps, placement
rules, policy endpoints) stay JSON text. Every table has `backup_set_id` and most a
`source_path` column naming the file in the ISO.

Values of another type than their column
----------------------------------------
The format names the keys of these files but rarely their value types, and other tools write
sets too, so a value that does not fit its column never fails a registration (the whole
document stays in the `configurations` table). Each value is fitted to its column's type:

- text: text as is; a date or time in ISO form; anything else as JSON text (8080 → "8080").
- integer: an integer (or a float without fraction); anything else null. float: a number, else
  null. boolean: true/false, else null. timestamp: a date-time, or RFC 3339 text (`T`/`t`,
  `Z`/`z`), else null.
- list: each item fitted to the item type; a single value becomes a one-item list. Every `ports`
  column is a list of text, since writers spell ports as numbers or as "8080/tcp", "80:8080".
- `depends_on` is read as the planner reads it (`transforms.documents.dependencies`: names, mappings
  naming the dependency under `app`, `service` or `name` with an optional `strength`, or
  `{name: strength}`; hard unless soft is said); `depends_on` holds the names and
  `depends_on_strength` the strengths in the same order.
- `db/schema.json` is read as `{"tables": {table: {"columns": {column: type}}}}`, where tables and
  columns may also be lists of objects with a `name`, and a type may be an object with a
  `type`. A type other than text, integer, bigint, boolean, timestamp, json, float, double
  (any case) is text. A schema of any other shape is ignored. Each orchestrator table has the
  columns its schema declares, then every other key of its rows as text.

What can go wrong
-----------------
A document that does not parse (malformed YAML/JSON), is not a mapping where the format gives
one, or has a list of records that is not a list of mappings raises `BackupSetError` naming the
file. Keys a table does not know are ignored. Orchestrator tables beyond the five the format
requires are typed the same way and returned under `orchestrator_db_<table>`; callers that expose
a fixed set of tables keep the required ones and the generic `orchestrator_db_rows` (every row as
JSON).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time
from typing import Any

import pyarrow as pa
import yaml

from omni_recovery.backupset.layout import parse_time
from omni_recovery.backupset.manifest import join_chunks
from omni_recovery.errors import BackupSetError
from omni_recovery.yaml_text import load_yaml
from transforms.documents import dependencies, document_items, first_of

__all__ = [
    "CONFIG_SCHEMAS",
    "ORCHESTRATOR_DB_TABLES",
    "config_tables",
    "is_config_path",
    "parse_document",
    "whole_config_files",
]

_S, _I, _F, _B = pa.string(), pa.int64(), pa.float64(), pa.bool_()
_TS = pa.timestamp("us", tz="UTC")
_LS = pa.list_(pa.string())

ORCHESTRATOR_DB_TABLES = ("users", "roles", "permissions", "app_definitions", "cluster_policies")


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([("backup_set_id", _S), *fields])


CONFIG_SCHEMAS: dict[str, pa.Schema] = {
    "directors": _schema(
        ("director_id", _S), ("ring_id", _S), ("node", _S), ("management_address", _S),
        ("storage_address", _S), ("ring_peers", _LS), ("storage_paths", _S),
        ("reserved_cpu_cores", _I), ("reserved_memory_mib", _I), ("source_path", _S),
    ),
    "director_vms": _schema(
        ("director_id", _S), ("vm_id", _S), ("name", _S), ("role", _S), ("cpu", _F), ("memory_mib", _I),
        ("disk_gib", _I), ("image", _S), ("networks", _S), ("source_path", _S),
    ),
    "director_history": _schema(("director_id", _S), ("at", _TS), ("event", _S), ("detail", _S)),
    "director_hardware": _schema(
        ("director_id", _S), ("hostname", _S), ("role", _S), ("cpu_cores", _I), ("memory_mib", _I),
        ("disks", _S), ("nics", _S), ("source_path", _S),
    ),
    "orchestrators": _schema(
        ("orchestrator_id", _S), ("cluster_id", _S), ("vm_id", _S), ("director", _S), ("address", _S),
        ("peers", _LS), ("placement_strategy", _S), ("placement_zones", _LS), ("placement", _S),
        ("source_path", _S),
    ),
    "orchestrator_db_columns": _schema(
        ("orchestrator_id", _S), ("table_name", _S), ("column_name", _S), ("column_type", _S),
    ),
    "orchestrator_db_rows": _schema(
        ("orchestrator_id", _S), ("table_name", _S), ("row_number", _I), ("record", _S), ("source_path", _S),
    ),
    "applications": _schema(
        ("name", _S), ("priority", _S), ("orchestrator", _S), ("version", _S), ("vm", _S),
        ("depends_on", _LS), ("depends_on_strength", _LS), ("container_count", _I), ("volume_count", _I),
        ("source_path", _S),
    ),
    "application_containers": _schema(
        ("application", _S), ("name", _S), ("image", _S), ("cpu", _F), ("memory_mib", _I), ("replicas", _I),
        ("ports", _LS), ("env", _S), ("secret_refs", _LS),
    ),
    "application_volumes": _schema(("application", _S), ("name", _S), ("mount_path", _S)),
    "services": _schema(
        ("name", _S), ("category", _S), ("role", _S), ("vm", _S), ("version", _S), ("ports", _LS),
        ("depends_on", _LS), ("depends_on_strength", _LS), ("source_path", _S),
    ),
    "volumes": _schema(
        ("application", _S), ("name", _S), ("size_gib", _F), ("storage_class", _S), ("mount_path", _S),
        ("source_path", _S), ("config_path", _S),
    ),
    "network_subnets": _schema(("name", _S), ("cidr", _S), ("gateway", _S), ("vlan", _I), ("purpose", _S)),
    "network_routes": _schema(
        ("destination", _S), ("gateway", _S), ("subnet", _S), ("metric", _I), ("description", _S),
    ),
    "network_policies": _schema(
        ("name", _S), ("action", _S), ("source", _S), ("destination", _S), ("protocol", _S), ("ports", _LS),
    ),
    "dns_records": _schema(
        ("zone", _S), ("name", _S), ("type", _S), ("address", _S), ("component_id", _S), ("ttl", _I),
    ),
    "network_links": _schema(("source", _S), ("destination", _S), ("protocol", _S), ("ports", _LS)),
}  # fmt: skip
for _db_table in ORCHESTRATOR_DB_TABLES:
    CONFIG_SCHEMAS[f"orchestrator_db_{_db_table}"] = _schema(
        ("orchestrator_id", _S)
    )  # widened per schema.json

_DB_TYPES: dict[str, pa.DataType] = {
    "text": _S,
    "integer": _I,
    "bigint": _I,
    "boolean": _B,
    "timestamp": _TS,
    "json": _S,
    "float": _F,
    "double": _F,
}

_VOLUME_FILES = re.compile(r"^data/volumes/[^/]+/[^/]+/files/")
_SUFFIXES = (".yaml", ".yml", ".json", ".jsonl")


def is_config_path(path: str, *, encrypted: bool = False) -> bool:
    """True for a configuration file worth parsing into the catalog."""
    if encrypted or not path.startswith("data/") or not path.endswith(_SUFFIXES):
        return False
    return not (_VOLUME_FILES.match(path) or path.startswith("data/keys/"))


def whole_config_files(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Configuration file rows (backup_set_id, iso_name, path, component_id, content, and the chunk
    columns of a part) with the parts of a chunked file joined into one row under its logical path,
    in chunk order, named by its first part's ISO. A file some of whose parts are not registered yet
    is left out until they are; a joined file that differs from its logical_sha256/logical_size
    raises BackupSetError naming it."""
    whole: list[dict[str, Any]] = []
    parts: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("chunk_of") is None:
            whole.append({name: row[name] for name in _FILE_COLUMNS})
        else:
            parts[(row["backup_set_id"], row["chunk_of"])].append(row)
    for (_, logical), pieces in sorted(parts.items()):
        pieces.sort(key=lambda piece: piece["chunk_index"])
        first = pieces[0]
        if [piece["chunk_index"] for piece in pieces] != list(range(first["chunk_count"])):
            continue
        try:
            content = join_chunks(
                [piece["content"] for piece in pieces], first["logical_size"], first["logical_sha256"]
            )
        except ValueError as exc:
            raise BackupSetError(str(exc), iso=first["iso_name"], path=logical) from exc
        whole.append({**{name: first[name] for name in _FILE_COLUMNS}, "path": logical, "content": content})
    return whole


_FILE_COLUMNS = ("backup_set_id", "iso_name", "path", "component_id", "content")


class _Tables:
    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.db_schemas: dict[str, dict[str, pa.DataType]] = {}

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows[table].append(row)


def parse_document(path: str, data: bytes) -> Any:
    """One configuration file parsed by its suffix (.yaml/.yml, .json, .jsonl as a list of objects)."""
    try:
        if path.endswith(".jsonl"):
            return [json.loads(line) for line in data.splitlines() if line.strip()]
        if path.endswith(".json"):
            return json.loads(data)
        return load_yaml(data)
    except (ValueError, yaml.YAMLError) as exc:
        raise BackupSetError(f"configuration cannot be parsed: {exc}", path=path) from exc


def _mapping(doc: Any, path: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise BackupSetError("configuration must be a mapping", path=path)
    return doc


def _list(value: Any, path: str, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BackupSetError(f"{what} must be a list", path=path)
    return value


def _j(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _sub(d: dict[str, Any], key: str) -> dict[str, Any]:
    """A nested mapping, or {} when the value is absent or of another shape."""
    value = d.get(key)
    return value if isinstance(value, dict) else {}


def _fit(value: Any, kind: pa.DataType) -> Any:
    """`value` as its column's type, or null when it has another (the rule in the module docstring)."""
    if value is None:
        return None
    if pa.types.is_list(kind):
        return [_fit(item, kind.value_type) for item in (value if isinstance(value, list) else [value])]
    if kind == _S:
        return value if isinstance(value, str) else _text(value)
    if kind == _I:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return value if _is_int(value) and -(2**63) <= value < 2**63 else None
    if kind == _F:
        return float(value) if _is_int(value) or isinstance(value, float) else None
    if kind == _B:
        return value if isinstance(value, bool) else None
    if kind == _TS:
        return _time(value)
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any) -> str | None:
    if isinstance(value, date | time):  # YAML reads unquoted dates and times as such
        return value.isoformat()
    return _j(value)


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    try:
        return parse_time(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _dependencies(value: Any) -> tuple[list[str] | None, list[str] | None]:
    """depends_on as (names, strengths), read as the planner reads it; None when absent."""
    if value is None:
        return None, None
    found = dependencies(value)
    return [name for name, _ in found], [strength for _, strength in found]


def _director(t: _Tables, sid: str, ident: str, leaf: str, path: str, doc: Any) -> None:
    if leaf == "config.yaml":
        d = _mapping(doc, path)
        addresses, reservations = _sub(d, "addresses"), _sub(d, "reservations")
        t.add(
            "directors",
            {
                "backup_set_id": sid,
                "director_id": d.get("director_id", ident),
                "ring_id": d.get("ring_id"),
                "node": d.get("node"),
                "management_address": addresses.get("management"),
                "storage_address": addresses.get("storage"),
                "ring_peers": d.get("ring_peers"),
                "storage_paths": _j(d.get("storage_paths")),
                "reserved_cpu_cores": reservations.get("cpu_cores"),
                "reserved_memory_mib": reservations.get("memory_mib"),
                "source_path": path,
            },
        )
    elif leaf == "state.json":
        d = _mapping(doc, path)
        for vm in _list(d.get("vms"), path, "vms"):
            vm = _mapping(vm, path)
            t.add(
                "director_vms",
                {
                    "backup_set_id": sid,
                    "director_id": ident,
                    "vm_id": vm.get("vm_id"),
                    "name": vm.get("name"),
                    "role": vm.get("role"),
                    "cpu": vm.get("cpu"),
                    "memory_mib": vm.get("memory_mib"),
                    "disk_gib": vm.get("disk_gib"),
                    "image": vm.get("image"),
                    "networks": _j(vm.get("networks")),
                    "source_path": path,
                },
            )
        for event in _list(d.get("history"), path, "history"):
            event = _mapping(event, path)
            t.add(
                "director_history",
                {
                    "backup_set_id": sid,
                    "director_id": ident,
                    "at": event.get("at"),
                    "event": event.get("event"),
                    "detail": event.get("detail"),
                },
            )
    elif leaf == "hardware.yaml":
        d = _mapping(doc, path)
        t.add(
            "director_hardware",
            {
                "backup_set_id": sid,
                "director_id": ident,
                "hostname": d.get("hostname"),
                "role": d.get("role"),
                "cpu_cores": d.get("cpu_cores"),
                "memory_mib": d.get("memory_mib"),
                "disks": _j(d.get("disks")),
                "nics": _j(d.get("nics")),
                "source_path": path,
            },
        )


def _orchestrator(t: _Tables, sid: str, ident: str, rest: str, path: str, doc: Any) -> None:
    if rest == "config.yaml":
        d = _mapping(doc, path)
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
                "placement": _j(placement),
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
                c: _DB_TYPES.get(str(k).lower(), _S) for c, k in columns.items() if c not in _DB_KEYS
            }
    elif rest.startswith("db/") and rest.endswith(".jsonl"):
        table = rest[3:-6]
        for number, record in enumerate(_list(doc, path, "rows")):
            record = _mapping(record, path)
            t.add(
                "orchestrator_db_rows",
                {
                    "backup_set_id": sid,
                    "orchestrator_id": ident,
                    "table_name": table,
                    "row_number": number,
                    "record": _j(record),
                    "source_path": path,
                },
            )
            t.add(f"\x00db\x00{table}", {**record, "backup_set_id": sid, "orchestrator_id": ident})


_DB_KEYS = ("backup_set_id", "orchestrator_id")  # the catalog's own columns of every orchestrator table


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


def _application(t: _Tables, sid: str, ident: str, leaf: str, path: str, doc: Any) -> None:
    if leaf != "app.yaml":
        return
    d = _mapping(doc, path)
    name = d.get("name", ident)
    depends_on, strengths = _dependencies(d.get("depends_on"))
    containers = _list(d.get("containers"), path, "containers")
    volumes = _list(d.get("volumes"), path, "volumes")
    t.add(
        "applications",
        {
            "backup_set_id": sid,
            "name": name,
            "priority": d.get("priority"),
            "orchestrator": d.get("orchestrator"),
            "version": None if d.get("version") is None else str(d.get("version")),
            "vm": d.get("vm"),
            "depends_on": depends_on,
            "depends_on_strength": strengths,
            "container_count": len(containers),
            "volume_count": len(volumes),
            "source_path": path,
        },
    )
    for c in containers:
        c = _mapping(c, path)
        t.add(
            "application_containers",
            {
                "backup_set_id": sid,
                "application": name,
                "name": c.get("name"),
                "image": c.get("image"),
                "cpu": c.get("cpu"),
                "memory_mib": c.get("memory_mib"),
                "replicas": c.get("replicas"),
                "ports": c.get("ports"),
                "env": _j(c.get("env")),
                "secret_refs": c.get("secret_refs"),
            },
        )
    for v in volumes:
        v = _mapping(v, path)
        t.add(
            "application_volumes",
            {
                "backup_set_id": sid,
                "application": name,
                "name": v.get("name"),
                "mount_path": v.get("mount_path"),
            },
        )


def _service(t: _Tables, sid: str, ident: str, leaf: str, path: str, doc: Any) -> None:
    if leaf != "service.yaml":
        return
    d = _mapping(doc, path)
    depends_on, strengths = _dependencies(d.get("depends_on"))
    t.add(
        "services",
        {
            "backup_set_id": sid,
            "name": d.get("name", ident),
            "category": d.get("category"),
            "role": d.get("role"),
            "vm": d.get("vm"),
            "version": None if d.get("version") is None else str(d.get("version")),
            "ports": d.get("ports"),
            "depends_on": depends_on,
            "depends_on_strength": strengths,
            "source_path": path,
        },
    )


def _volume(t: _Tables, sid: str, app: str, volume: str, path: str, doc: Any) -> None:
    d = _mapping(doc, path)
    t.add(
        "volumes",
        {
            "backup_set_id": sid,
            "application": d.get("app", app),
            "name": d.get("name", volume),
            "size_gib": d.get("size_gib"),
            "storage_class": d.get("storage_class"),
            "mount_path": d.get("mount_path"),
            "source_path": d.get("source_path"),
            "config_path": path,
        },
    )


def _network(t: _Tables, sid: str, leaf: str, path: str, doc: Any) -> None:
    """Network documents in any shape the environment reader accepts (`document_items`, `first_of`)."""
    if leaf == "subnets.yaml":
        for s in document_items(doc, "subnets"):
            s = s if isinstance(s, dict) else {"cidr": s}  # a bare CIDR in a list
            t.add(
                "network_subnets",
                {
                    "backup_set_id": sid,
                    "name": s.get("name"),
                    "cidr": first_of(s, "cidr", "network", "prefix", "value"),
                    "gateway": s.get("gateway"),
                    "vlan": s.get("vlan"),
                    "purpose": s.get("purpose"),
                },
            )
    elif leaf == "routes.yaml":
        for r in _mappings_of(doc, "routes", path):
            t.add(
                "network_routes",
                {
                    "backup_set_id": sid,
                    "destination": first_of(r, "destination", "dst", "to"),
                    "gateway": first_of(r, "gateway", "via"),
                    "subnet": first_of(r, "subnet", "interface"),
                    "metric": r.get("metric"),
                    "description": r.get("description"),
                },
            )
    elif leaf == "policies.yaml":
        for p in _mappings_of(doc, "policies", path):
            t.add(
                "network_policies",
                {
                    "backup_set_id": sid,
                    "name": p.get("name"),
                    "action": p.get("action"),
                    "source": _j(first_of(p, "from", "source")),
                    "destination": _j(first_of(p, "to", "target")),
                    "protocol": p.get("protocol"),
                    "ports": p.get("ports"),
                },
            )
    elif leaf == "dns.yaml":
        d = _mapping(doc, path)
        for r in _mappings_of(d.get("records") or [], "records", path):
            t.add(
                "dns_records",
                {
                    "backup_set_id": sid,
                    "zone": first_of(d, "zone", "domain"),
                    "name": r.get("name"),
                    "type": r.get("type"),
                    "address": first_of(r, "address", "value", "ip", "data"),
                    "component_id": r.get("component"),
                    "ttl": r.get("ttl", d.get("ttl")),
                },
            )
    elif leaf == "connectivity.yaml":
        for link in _mappings_of(doc, "links", path):
            t.add(
                "network_links",
                {
                    "backup_set_id": sid,
                    "source": first_of(link, "from", "source"),
                    "destination": first_of(link, "to", "target"),
                    "protocol": link.get("protocol"),
                    "ports": link.get("ports"),
                },
            )


def _mappings_of(doc: Any, key: str, path: str) -> list[dict[str, Any]]:
    """The objects of a document's `key` list (or of the document as a list, or keyed by name)."""
    raw = doc.get(key, doc) if isinstance(doc, dict) else doc
    if isinstance(raw, dict) and not all(isinstance(v, dict) for v in raw.values()):
        raise BackupSetError(f"{key} must be a list of objects or a mapping of them by name", path=path)
    return [_mapping(item, path) for item in document_items(doc, key)]


_Handler = Callable[[_Tables, str, str, str, str, Any], None]
_BY_PREFIX: dict[str, _Handler] = {
    "directors": _director,
    "orchestrators": _orchestrator,
    "applications": _application,
    "services": _service,
}


def _dispatch(t: _Tables, sid: str, path: str, doc: Any) -> None:
    parts = path.split("/")
    if len(parts) >= 4 and parts[1] in _BY_PREFIX:
        _BY_PREFIX[parts[1]](t, sid, parts[2], "/".join(parts[3:]), path, doc)
    elif len(parts) == 5 and parts[1] == "volumes" and parts[4] == "volume.yaml":
        _volume(t, sid, parts[2], parts[3], path, doc)
    elif len(parts) == 3 and parts[1] == "network":
        _network(t, sid, parts[2], path, doc)


def _table(name: str, rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    fitted = [{f.name: _fit(row.get(f.name), f.type) for f in schema} for row in rows]
    try:
        return pa.Table.from_pylist(fitted, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        where = next((r.get("source_path") for r in rows if r.get("source_path")), None)
        raise BackupSetError(
            f"configuration table {name}: a value has the wrong type: {exc}", path=where
        ) from exc


def config_tables(documents: Iterable[tuple[str, str, bytes]]) -> dict[str, pa.Table]:
    """Parse `(backup_set_id, path, bytes)` configuration files into typed tables by name."""
    t = _Tables()
    for sid, path, data in documents:
        if not is_config_path(path):
            continue
        try:
            _dispatch(t, sid, path, parse_document(path, data))
        except BackupSetError as exc:
            if exc.path is None:
                raise BackupSetError(exc.reason, path=path) from exc
            raise
    out = {name: _table(name, t.rows.get(name, []), schema) for name, schema in CONFIG_SCHEMAS.items()}
    tables = {key.split("\x00")[2] for key in t.rows if key.startswith("\x00db\x00")}
    tables |= {key.split("\x00")[2] for key in t.db_schemas}
    for table in sorted(tables):
        rows = t.rows.get(f"\x00db\x00{table}", [])
        columns: dict[str, pa.DataType] = {}
        for schema_key, cols in t.db_schemas.items():
            if schema_key.endswith("\x00" + table):
                columns.update(cols)
        for row in rows:  # keys the schema does not declare are text
            columns.update({name: _S for name in row if name not in columns and name not in _DB_KEYS})
        schema = _schema(("orchestrator_id", _S), *columns.items())
        out[f"orchestrator_db_{table}"] = _table(f"orchestrator_db_{table}", rows, schema)
    return out
