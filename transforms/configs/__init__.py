"""Configuration files of a backup set (YAML, JSON, JSON lines) as typed Arrow tables.

`config_tables(documents)` takes `(backup_set_id, path, bytes)` triples, dispatches each on its path
(the layout of `data/` in backup-format.md) and returns one table per name of `CONFIG_SCHEMAS`:
directors and their VMs, orchestrators, every orchestrator database table (typed from its
`db/schema.json`), applications with their containers and volumes, core services, volumes, and the
network (subnets, routes, policies, DNS records, connectivity links). Every table has
`backup_set_id` and most a `source_path` column naming the file in the ISO. The facts are found as
the environment reader finds them, in any shape it accepts (`rows`, `network`); each set's subnets
are read first, so a Director's addresses given as a bare list are named by the subnet holding them.

Parts: `files` (which files, chunk joining, parsing), `schemas` (types and fitting values to them),
`rows`, `orchestrators`, `network` (one table family each).

What can go wrong: a document that does not parse, is not a mapping where the format gives one, or
has a malformed subnet raises BackupSetError naming the file. Keys a table does not know are
ignored. Orchestrator tables beyond the five the format requires are typed the same way and
returned under `orchestrator_db_<table>`; callers that expose a fixed set of tables keep the
required ones and the generic `orchestrator_db_rows` (every row as JSON).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from omni_recovery.errors import BackupSetError
from transforms.configs.files import is_config_path, parse_document, whole_config_files
from transforms.configs.network import network_rows
from transforms.configs.orchestrators import DB_KEYS, orchestrator_rows
from transforms.configs.rows import Tables, application_rows, director_rows, service_rows, volume_rows
from transforms.configs.schemas import (
    CONFIG_SCHEMAS,
    ORCHESTRATOR_DB_TABLES,
    STR,
    table_schema,
    typed_table,
)
from transforms.documents import subnets_in
from transforms.documents.sources import MisreadFact

__all__ = [
    "CONFIG_SCHEMAS",
    "ORCHESTRATOR_DB_TABLES",
    "config_tables",
    "is_config_path",
    "parse_document",
    "whole_config_files",
]

_Handler = Callable[[Tables, str, str, str, str, Any], None]
_BY_PREFIX: dict[str, _Handler] = {
    "directors": director_rows,
    "orchestrators": orchestrator_rows,
    "applications": application_rows,
    "services": service_rows,
}
_SUBNETS = "data/network/subnets.yaml"


def _dispatch(t: Tables, sid: str, path: str, doc: Any) -> None:
    parts = path.split("/")
    if len(parts) >= 4 and parts[1] in _BY_PREFIX:
        _BY_PREFIX[parts[1]](t, sid, parts[2], "/".join(parts[3:]), path, doc)
    elif len(parts) == 5 and parts[1] == "volumes" and parts[4] == "volume.yaml":
        volume_rows(t, sid, parts[2], parts[3], path, doc)
    elif len(parts) == 3 and parts[1] == "network":
        network_rows(t, sid, parts[2], path, doc)


@contextmanager
def _naming(iso: str | None, path: str) -> Iterator[None]:
    """An error about one document is a BackupSetError naming its ISO and path."""
    try:
        yield
    except BackupSetError as exc:
        if exc.iso is not None and exc.path is not None:
            raise
        raise BackupSetError(exc.reason, iso=exc.iso or iso, path=exc.path or path) from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a shape no reader foresaw
        raise BackupSetError(f"malformed ({type(exc).__name__}: {exc})", iso=iso, path=path) from exc


def _parsed(
    documents: Iterable[tuple[str, str, bytes]], t: Tables, held_by: Mapping[tuple[str, str], str]
) -> list[tuple[str, str, str | None, Any]]:
    """Every configuration document parsed, with the ISO holding it; each set's subnets noted in `t`."""
    parsed = []
    for sid, path, data in documents:
        if not is_config_path(path):
            continue
        iso = held_by.get((sid, path))
        with _naming(iso, path):
            doc = parse_document(path, data)
            if path == _SUBNETS:
                try:
                    t.subnets[sid] = subnets_in(doc)
                except ValueError as exc:  # MisreadFact: where in the document
                    at = f" at {exc.pointer or '/'}" if isinstance(exc, MisreadFact) else ""
                    raise BackupSetError(f"a subnet is malformed: {exc}{at}") from exc
        parsed.append((sid, path, iso, doc))
    return parsed


def config_tables(
    documents: Iterable[tuple[str, str, bytes]], held_by: Mapping[tuple[str, str], str] | None = None
) -> dict[str, pa.Table]:
    """Parse `(backup_set_id, path, bytes)` configuration files into typed tables by name; `held_by`
    ((backup_set_id, path) → ISO file name) lets an error name the ISO."""
    t = Tables()
    for sid, path, iso, doc in _parsed(documents, t, held_by or {}):
        with _naming(iso, path):
            _dispatch(t, sid, path, doc)
    out = {name: typed_table(name, t.rows.get(name, []), schema) for name, schema in CONFIG_SCHEMAS.items()}
    out.update(_database_tables(t))
    return out


def _database_tables(t: Tables) -> dict[str, pa.Table]:
    """One table per orchestrator database table: its schema's columns, then its rows' other keys."""
    tables = {key.split("\x00")[2] for key in t.rows if key.startswith("\x00db\x00")}
    tables |= {key.split("\x00")[2] for key in t.db_schemas}
    out = {}
    for table in sorted(tables):
        rows = t.rows.get(f"\x00db\x00{table}", [])
        columns: dict[str, pa.DataType] = {}
        for schema_key, cols in t.db_schemas.items():
            if schema_key.endswith("\x00" + table):
                columns.update(cols)
        for row in rows:  # keys the schema does not declare are text
            columns.update({name: STR for name in row if name not in columns and name not in DB_KEYS})
        schema = table_schema(("orchestrator_id", STR), *columns.items())
        out[f"orchestrator_db_{table}"] = typed_table(f"orchestrator_db_{table}", rows, schema)
    return out
