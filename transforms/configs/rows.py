"""The catalog's rows of Directors (config, VMs, history, host hardware), applications (with their
containers and volumes), core services and volumes, each fact found through the environment
reader's own parts (`transforms.documents`), so the catalog reads every shape the plan reads: lists
or mappings keyed by name, bare values or objects, wrappers, the other field names the reader knows.

`depends_on` is read as the planner reads it (`transforms.documents.dependencies`); `depends_on` holds
the names and `depends_on_strength` the strengths in the same order. A document that is not a
mapping where the format gives one raises BackupSetError naming it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pyarrow as pa

from omni_recovery.errors import BackupSetError
from transforms.configs.schemas import json_text
from transforms.documents import (
    CPU_KEYS,
    DISK_KEYS,
    MEMORY_KEYS,
    RESERVED_CPU_KEYS,
    RESERVED_MEMORY_KEYS,
    RING_PEER_KEYS,
    VM_ID_KEYS,
    Subnet,
    addresses,
    containers,
    dependencies,
    disks,
    first_of,
    named_items,
    reserved_of,
    storage_paths,
    text_of,
    vm_items,
    vm_network_list,
    vm_networks,
    volume_fields,
    volume_mounts,
)

_VM_KEYS = ("vm", "vm_id")


class Tables:
    """The rows found so far, by table name, and each set's subnets (to name a Director's addresses)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.db_schemas: dict[str, dict[str, pa.DataType]] = {}
        self.subnets: dict[str, tuple[Subnet, ...]] = {}

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows[table].append(row)


def mapping(doc: Any, path: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise BackupSetError("configuration must be a mapping", path=path)
    return doc


def listed(value: Any, path: str, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BackupSetError(f"{what} must be a list", path=path)
    return value


def _dependencies(value: Any) -> tuple[list[str] | None, list[str] | None]:
    """depends_on as (names, strengths), read as the planner reads it; None when absent."""
    if value is None:
        return None, None
    found = dependencies(value)
    return [name for name, _ in found], [strength for _, strength in found]


def director_rows(t: Tables, sid: str, ident: str, leaf: str, path: str, doc: Any) -> None:
    if leaf == "config.yaml":
        _director(t, sid, ident, path, mapping(doc, path))
    elif leaf == "state.json":
        _director_state(t, sid, ident, path, mapping(doc, path))
    elif leaf == "hardware.yaml":
        d = mapping(doc, path)
        t.add(
            "director_hardware",
            {
                "backup_set_id": sid,
                "director_id": ident,
                "hostname": text_of(d, "hostname", "name"),
                "role": text_of(d, "role"),
                "cpu_cores": first_of(d, "cpu_cores", "cpus", "cpu"),
                "memory_mib": first_of(d, *MEMORY_KEYS),
                "disks": json_text(disks(d)),
                "nics": json_text(named_items(first_of(d, "nics", "interfaces"))),
                "source_path": path,
            },
        )


def _director(t: Tables, sid: str, ident: str, path: str, d: dict[str, Any]) -> None:
    by_subnet = dict(addresses(d, t.subnets.get(sid, ())))
    reserved = reserved_of(d)
    t.add(
        "directors",
        {
            "backup_set_id": sid,
            "director_id": text_of(d, "director_id", "id") or ident,
            "ring_id": text_of(d, "ring_id", "ring"),
            "node": text_of(d, "node"),
            "management_address": by_subnet.get("management"),
            "storage_address": by_subnet.get("storage"),
            "ring_peers": first_of(d, *RING_PEER_KEYS),  # items fitted to text as they are
            "storage_paths": json_text(dict(storage_paths(d)) or None),
            "reserved_cpu_cores": first_of(reserved, *RESERVED_CPU_KEYS),
            "reserved_memory_mib": first_of(reserved, *RESERVED_MEMORY_KEYS),
            "source_path": path,
        },
    )


def _director_state(t: Tables, sid: str, ident: str, path: str, d: dict[str, Any]) -> None:
    subnets = t.subnets.get(sid, ())
    for vm in vm_items(d):
        networks = vm_networks(vm_network_list(vm), subnets)
        t.add(
            "director_vms",
            {
                "backup_set_id": sid,
                "director_id": ident,
                "vm_id": text_of(vm, *VM_ID_KEYS),
                "name": text_of(vm, "name"),
                "role": text_of(vm, "role"),
                "cpu": first_of(vm, *CPU_KEYS),
                "memory_mib": first_of(vm, *MEMORY_KEYS),
                "disk_gib": first_of(vm, *DISK_KEYS),
                "image": text_of(vm, "image"),
                "networks": json_text([{"subnet": n.subnet, "ip": n.ip} for n in networks]),
                "source_path": path,
            },
        )
    for event in named_items(first_of(d, "history", "events"), "event"):
        t.add(
            "director_history",
            {
                "backup_set_id": sid,
                "director_id": ident,
                "at": first_of(event, "at", "time", "timestamp"),
                "event": first_of(event, "event", "type"),
                "detail": first_of(event, "detail", "message"),
            },
        )


def application_rows(t: Tables, sid: str, ident: str, leaf: str, path: str, doc: Any) -> None:
    if leaf != "app.yaml":
        return
    d = mapping(doc, path)
    name = text_of(d, "name") or ident
    depends_on, strengths = _dependencies(d.get("depends_on"))
    found_containers, mounts = containers(d), volume_mounts(d)
    t.add(
        "applications",
        {
            "backup_set_id": sid,
            "name": name,
            "priority": text_of(d, "priority"),
            "orchestrator": text_of(d, "orchestrator"),
            "version": text_of(d, "version"),
            "vm": text_of(d, *_VM_KEYS),
            "depends_on": depends_on,
            "depends_on_strength": strengths,
            "container_count": len(found_containers),
            "volume_count": len(mounts),
            "source_path": path,
        },
    )
    for c in found_containers:
        t.add(
            "application_containers",
            {
                "backup_set_id": sid,
                "application": name,
                "name": text_of(c, "name"),
                "image": text_of(c, "image"),
                "cpu": first_of(c, *CPU_KEYS),
                "memory_mib": first_of(c, *MEMORY_KEYS),
                "replicas": first_of(c, "replicas", "count", "instances"),
                "ports": c.get("ports"),
                "env": json_text(first_of(c, "env", "environment")),
                "secret_refs": first_of(c, "secret_refs", "secrets"),
            },
        )
    for volume, mount_path in mounts:
        t.add(
            "application_volumes",
            {"backup_set_id": sid, "application": name, "name": volume, "mount_path": mount_path},
        )


def service_rows(t: Tables, sid: str, ident: str, leaf: str, path: str, doc: Any) -> None:
    if leaf != "service.yaml":
        return
    d = mapping(doc, path)
    depends_on, strengths = _dependencies(d.get("depends_on"))
    t.add(
        "services",
        {
            "backup_set_id": sid,
            "name": text_of(d, "name") or ident,
            "category": text_of(d, "category"),
            "role": text_of(d, "role"),
            "vm": text_of(d, *_VM_KEYS),
            "version": text_of(d, "version"),
            "ports": d.get("ports"),
            "depends_on": depends_on,
            "depends_on_strength": strengths,
            "source_path": path,
        },
    )


def volume_rows(t: Tables, sid: str, app: str, volume: str, path: str, doc: Any) -> None:
    facts = volume_fields(mapping(doc, path))
    row = {key: facts[key] for key in ("size_gib", "storage_class", "mount_path", "source_path")}
    t.add(
        "volumes",
        {
            "backup_set_id": sid,
            "application": facts["app"] or app,
            "name": facts["name"] or volume,
            **row,
            "config_path": path,
        },
    )
