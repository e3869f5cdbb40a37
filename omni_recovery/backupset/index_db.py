"""recovery_index.db: the SQLite index of components, dependencies, files and hardware in an ISO.

Writing creates the four tables of the format. Reading treats the database as untrusted input:
it is opened read-only and immutable from a private copy of the bytes, only the known columns
are selected, every value is type-checked, and anything unreadable becomes a BackupSetError
naming the ISO. Tables and columns the reader does not know are ignored.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omni_recovery.errors import BackupSetError

COMPONENT_KINDS = ("director", "orchestrator", "volume", "application", "service", "network", "system")
PRIORITIES = ("critical", "standard", "low")
STRENGTHS = ("hard", "soft")


@dataclass(frozen=True)
class Component:
    component_id: str
    kind: str
    name: str
    parent_id: str | None
    priority: str | None
    iso_kind: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Dependency:
    component_id: str
    depends_on_id: str
    strength: str


@dataclass(frozen=True)
class HardwareNode:
    node_id: str
    role: str
    cpu_cores: int
    memory_mib: int
    disks: list[dict[str, Any]]
    nics: list[dict[str, Any]]


@dataclass
class RecoveryIndex:
    components: list[Component] = field(default_factory=list)
    dependencies: list[Dependency] = field(default_factory=list)
    files: list[tuple[str, str]] = field(default_factory=list)
    hardware: list[HardwareNode] = field(default_factory=list)


_SCHEMA = """
CREATE TABLE components (
    component_id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, parent_id TEXT,
    priority TEXT, iso_kind TEXT NOT NULL, attributes TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE dependencies (component_id TEXT NOT NULL, depends_on_id TEXT NOT NULL, strength TEXT NOT NULL);
CREATE TABLE files (path TEXT NOT NULL, component_id TEXT);
CREATE TABLE hardware (
    node_id TEXT PRIMARY KEY, role TEXT NOT NULL, cpu_cores INTEGER NOT NULL, memory_mib INTEGER NOT NULL,
    disks TEXT NOT NULL, nics TEXT NOT NULL
);
"""


def write_index(path: Path, index: RecoveryIndex) -> None:
    """Write `index` as a new SQLite database at `path` (which must not exist)."""
    if path.exists():
        raise FileExistsError(path)
    conn = sqlite3.connect(path)
    try:
        conn.executescript(_SCHEMA)
        conn.executemany(
            "INSERT INTO components VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    c.component_id,
                    c.kind,
                    c.name,
                    c.parent_id,
                    c.priority,
                    c.iso_kind,
                    json.dumps(c.attributes, sort_keys=True),
                )
                for c in index.components
            ),
        )
        conn.executemany(
            "INSERT INTO dependencies VALUES (?, ?, ?)",
            ((d.component_id, d.depends_on_id, d.strength) for d in index.dependencies),
        )
        conn.executemany("INSERT INTO files VALUES (?, ?)", index.files)
        conn.executemany(
            "INSERT INTO hardware VALUES (?, ?, ?, ?, ?, ?)",
            (
                (h.node_id, h.role, h.cpu_cores, h.memory_mib, json.dumps(h.disks), json.dumps(h.nics))
                for h in index.hardware
            ),
        )
        conn.commit()
    finally:
        conn.close()


def read_index(path: Path, *, iso: str) -> RecoveryIndex:
    """Read an index database from a local file, refusing anything malformed with a clear error."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as exc:
        raise BackupSetError(
            f"recovery_index.db cannot be opened: {exc}", iso=iso, path="metadata/recovery_index.db"
        ) from exc
    try:
        conn.execute("PRAGMA trusted_schema = OFF")
        conn.execute("PRAGMA query_only = ON")
        return RecoveryIndex(
            components=[_component(row, iso) for row in _select(conn, iso, "components", _COMPONENT_COLUMNS)],
            dependencies=[
                _dependency(row, iso) for row in _select(conn, iso, "dependencies", _DEPENDENCY_COLUMNS)
            ],
            files=[_file(row, iso) for row in _select(conn, iso, "files", ("path", "component_id"))],
            hardware=[_hardware(row, iso) for row in _select(conn, iso, "hardware", _HARDWARE_COLUMNS)],
        )
    finally:
        conn.close()


_COMPONENT_COLUMNS = ("component_id", "kind", "name", "parent_id", "priority", "iso_kind", "attributes")
_DEPENDENCY_COLUMNS = ("component_id", "depends_on_id", "strength")
_HARDWARE_COLUMNS = ("node_id", "role", "cpu_cores", "memory_mib", "disks", "nics")


def _select(conn: sqlite3.Connection, iso: str, table: str, columns: Iterable[str]) -> list[tuple[Any, ...]]:
    cols = list(columns)
    try:
        known = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if not known:
            raise _bad(iso, f"table {table} is missing")
        missing = [c for c in cols if c not in known]
        if missing:
            raise _bad(iso, f"table {table} lacks column(s) {', '.join(missing)}")
        return conn.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall()
    except sqlite3.Error as exc:
        raise _bad(iso, f"table {table} cannot be read: {exc}") from exc


def _bad(iso: str, message: str) -> BackupSetError:
    return BackupSetError(f"recovery_index.db: {message}", iso=iso, path="metadata/recovery_index.db")


def _text(value: Any, iso: str, what: str, *, nullable: bool = False) -> Any:
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value:
        raise _bad(iso, f"{what} must be non-empty text, found {value!r}")
    return value


def _choice(value: Any, choices: tuple[str, ...], iso: str, what: str, *, nullable: bool = False) -> Any:
    if value is None and nullable:
        return None
    if value not in choices:
        raise _bad(iso, f"{what} must be one of {', '.join(choices)}, found {value!r}")
    return value


def _json(value: Any, expected: type, iso: str, what: str) -> Any:
    try:
        parsed = json.loads(value) if isinstance(value, str) else None
    except json.JSONDecodeError as exc:
        raise _bad(iso, f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(parsed, expected):
        raise _bad(iso, f"{what} must be a JSON {expected.__name__}, found {value!r}")
    return parsed


def _int(value: Any, iso: str, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _bad(iso, f"{what} must be a non-negative integer, found {value!r}")
    return value


def _component(row: tuple[Any, ...], iso: str) -> Component:
    cid, kind, name, parent, priority, iso_kind, attributes = row
    return Component(
        component_id=_text(cid, iso, "components.component_id"),
        kind=_choice(kind, COMPONENT_KINDS, iso, f"components.kind of {cid}"),
        name=_text(name, iso, f"components.name of {cid}"),
        parent_id=_text(parent, iso, f"components.parent_id of {cid}", nullable=True),
        priority=_choice(priority, PRIORITIES, iso, f"components.priority of {cid}", nullable=True),
        iso_kind=_text(iso_kind, iso, f"components.iso_kind of {cid}"),
        attributes=_json(attributes, dict, iso, f"components.attributes of {cid}"),
    )


def _dependency(row: tuple[Any, ...], iso: str) -> Dependency:
    cid, dep, strength = row
    return Dependency(
        component_id=_text(cid, iso, "dependencies.component_id"),
        depends_on_id=_text(dep, iso, f"dependencies.depends_on_id of {cid}"),
        strength=_choice(strength, STRENGTHS, iso, f"dependencies.strength of {cid}"),
    )


def _file(row: tuple[Any, ...], iso: str) -> tuple[str, str]:
    path, cid = row
    return _text(path, iso, "files.path"), _text(cid, iso, f"files.component_id of {path}", nullable=True)


def _hardware(row: tuple[Any, ...], iso: str) -> HardwareNode:
    node, role, cores, memory, disks, nics = row
    return HardwareNode(
        node_id=_text(node, iso, "hardware.node_id"),
        role=_text(role, iso, f"hardware.role of {node}"),
        cpu_cores=_int(cores, iso, f"hardware.cpu_cores of {node}"),
        memory_mib=_int(memory, iso, f"hardware.memory_mib of {node}"),
        disks=_json(disks, list, iso, f"hardware.disks of {node}"),
        nics=_json(nics, list, iso, f"hardware.nics of {node}"),
    )
