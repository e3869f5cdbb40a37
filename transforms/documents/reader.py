"""One reader of an environment's documents: `environment_from_files(texts, components, dependencies)`.

Sets another writer made follow only the backup-format spec, which names fewer fields than this
project writes; what is missing is derived, never required: which VM runs what (`claims`), the old
nodes (`nodes/*.yaml`, else the Directors' `hardware.yaml` and the index's hardware table),
dependency strengths (the index's, authoritative), and the other shapes a spec-following document may
take (docs/backup-format.md lists them). A fact the reader cannot do without raises
EnvironmentStateError naming the document.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from omni_recovery.backupset.index_db import Component, Dependency, HardwareNode
from omni_recovery.errors import EnvironmentStateError
from transforms.documents.claims import _claims, _owned
from transforms.documents.facts import (
    CPU_KEYS,
    DISK_KEYS,
    MEMORY_KEYS,
    VM_ID_KEYS,
    disks,
    nics,
    number,
    reservations,
    ring_peers,
    storage_paths,
    vm_items,
    vm_list_key,
    vm_network_list,
    vm_networks,
)
from transforms.documents.facts import addresses as director_addresses
from transforms.documents.model import VM, Director, Environment, Nic, Node, Subnet
from transforms.documents.network import _read_network, subnet_of
from transforms.documents.sources import (
    DEFAULT_GROUP,
    MisreadFact,
    _Files,
    _Index,
    _ip_text,
    _json,
    _mappings,
    _optional,
    _text,
    _Workloads,
    _yaml,
    item_places,
    json_pointer,
)
from transforms.documents.workloads import _read_app, _read_orchestrator, _read_service, _read_volumes


def environment_from_files(
    files: Mapping[str, str],
    components: tuple[Component, ...],
    dependencies: tuple[Dependency, ...],
    name: str = "environment",
    hardware: tuple[HardwareNode, ...] = (),
) -> Environment:
    """The model from the texts of an environment's files, keyed by environment path (`environment.yaml`,
    `directors/dir-1/config.yaml`, …; volume data not needed), with the index's components and
    dependencies — the path the catalog takes (ISO paths map back with `envstate.model.env_path`).
    `hardware` is the index's hardware table: old nodes that no `nodes/*.yaml` or `hardware.yaml`
    describes."""
    return _environment(_Files(files), _Index(components, dependencies, hardware), name)


def _environment(src: _Files, index: _Index, name: str) -> Environment:
    try:
        return _read_environment(src, index, name)
    except MisreadFact as exc:
        raise EnvironmentStateError(
            f"{src.current}: malformed (ValueError: {exc}) at {exc.pointer or '/'}"
        ) from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EnvironmentStateError(f"{src.current}: malformed ({type(exc).__name__}: {exc})") from exc


def _read_environment(src: _Files, index: _Index, name: str) -> Environment:
    env_doc = _yaml(src, "environment.yaml")
    network = _read_network(src)
    work = _Workloads.read(src)
    directors, hosts = _read_directors(src, index, network.subnets)
    raw_vms = [vm for d in directors for vm in _read_vms(src, d.director_id, network.subnets)]
    claims = _claims(work, index, raw_vms, network)
    vms = _owned(raw_vms, claims)
    return Environment(
        name=str(env_doc.get("name", name)),
        nodes=_read_nodes(src, directors, hosts, index.hardware, network.subnets),
        directors=directors,
        vms=vms,
        orchestrators=tuple(
            _read_orchestrator(src, oid, rel, cfg, claims, vms, index)
            for oid, (rel, cfg) in work.orchestrators.items()
        ),
        services=tuple(
            _read_service(src, n, rel, doc, claims, index) for n, (rel, doc) in work.services.items()
        ),
        applications=tuple(
            _read_app(src, n, rel, doc, claims, index) for n, (rel, doc) in work.applications.items()
        ),
        volumes=_read_volumes(src),
        network=network,
        components=index.components,
        dependencies=index.dependencies,
    )


def _read_directors(
    src: _Files, index: _Index, subnets: tuple[Subnet, ...]
) -> tuple[tuple[Director, ...], dict[str, dict[str, Any]]]:
    """Every Director, and the `hardware.yaml` of each that has one (its host node, spec-defined)."""
    directors, hosts = [], {}
    for did in src.names("directors"):
        host = _optional(src, f"directors/{did}/hardware.yaml")
        if host:
            hosts[did] = host
        cfg = _yaml(src, f"directors/{did}/config.yaml")
        directors.append(_read_director(did, cfg, host, index, subnets))
    return tuple(directors), hosts


def _read_director(
    did: str, cfg: dict[str, Any], host: dict[str, Any], index: _Index, subnets: tuple[Subnet, ...]
) -> Director:
    addresses = director_addresses(cfg, subnets)
    reserved_cpu, reserved_memory = reservations(cfg)
    return Director(
        director_id=did,
        ring_id=_text(cfg, "ring_id", "ring")
        or index.attribute(f"director:{did}", "ring_id")
        or DEFAULT_GROUP,
        node=_director_node(did, cfg, host, index, addresses),
        addresses=addresses,
        storage_paths=storage_paths(cfg),
        reserved_cpu=int(reserved_cpu or 0),
        reserved_memory_mib=int(reserved_memory or 0),
        ring_peers=ring_peers(cfg),
    )


def _director_node(
    did: str,
    cfg: dict[str, Any],
    host: dict[str, Any],
    index: _Index,
    addresses: tuple[tuple[str, str], ...],
) -> str:
    """The old node a Director runs on: config.yaml's `node` (ours), the index's, its hardware.yaml's
    hostname, or the index hardware row holding one of its addresses; "" when nothing says."""
    named = _text(cfg, "node") or index.attribute(f"director:{did}", "node") or _text(host, "hostname")
    if named:
        return named
    own = {address for _, address in addresses}
    for row in index.hardware:
        if any(_ip_text(n.get("ip")) in own for n in _mappings(row.nics)):
            return row.node_id
    return did if host else ""


def _read_vms(src: _Files, did: str, subnets: tuple[Subnet, ...]) -> list[VM]:
    state = _json(src, f"directors/{did}/state.json")
    key = vm_list_key(state)
    vms = []
    for vm, place in zip(vm_items(state), item_places(state.get(key)), strict=True):
        try:
            vms.append(_read_vm(vm, did, subnets))
        except MisreadFact as exc:
            raise exc.under(key, *place) from None
    return vms


def _read_vm(vm: Mapping[str, Any], did: str, subnets: tuple[Subnet, ...]) -> VM:
    vm_id = _text(vm, *VM_ID_KEYS)
    if vm_id is None:
        raise MisreadFact(json_pointer(VM_ID_KEYS[0]), "the VM names no vm_id")
    return VM(
        vm_id=vm_id,
        name=_text(vm, "name") or vm_id,
        role=_text(vm, "role") or "",  # settled by `_owned`
        cpu=math.ceil(number(vm, *CPU_KEYS) or 0),
        memory_mib=int(number(vm, *MEMORY_KEYS) or 0),
        disk_gib=math.ceil(number(vm, *DISK_KEYS) or 0),
        director=did,
        owner="",
        networks=vm_networks(vm_network_list(vm), subnets),
    )


def _read_nodes(
    src: _Files,
    directors: tuple[Director, ...],
    hosts: dict[str, dict[str, Any]],
    hardware: tuple[HardwareNode, ...],
    subnets: tuple[Subnet, ...],
) -> tuple[Node, ...]:
    """The old nodes: `nodes/*.yaml` (this project's sets), then, for nodes those do not describe, each
    Director's `hardware.yaml` and the rows of the index's hardware table."""
    nodes = [_read_node(src, n, subnets) for n in src.names("nodes", ".yaml")]
    known = {n.name for n in nodes}
    roles = {h.node_id: h.role for h in hardware}
    for d in directors:
        host = hosts.get(d.director_id)
        if host and d.node and d.node not in known:
            src.current = f"directors/{d.director_id}/hardware.yaml"
            nodes.append(_node(host, d.node, _text(host, "role") or roles.get(d.node, "director"), subnets))
            known.add(d.node)
    src.current = "the index's hardware table"
    for h in hardware:
        if h.node_id not in known:
            doc = {"cpu_cores": h.cpu_cores, "memory_mib": h.memory_mib, "disks": h.disks, "nics": h.nics}
            nodes.append(_node(doc, h.node_id, h.role, subnets))
            known.add(h.node_id)
    return tuple(nodes)


def _read_node(src: _Files, name: str, subnets: tuple[Subnet, ...]) -> Node:
    doc = _yaml(src, f"nodes/{name}.yaml")
    return _node(doc, str(doc.get("hostname", name)), str(doc.get("role", "compute")), subnets)


def _node(doc: Mapping[str, Any], name: str, role: str, subnets: tuple[Subnet, ...]) -> Node:
    """A node from a nodes/*.yaml or hardware.yaml document (or an index hardware row as one)."""
    return Node(
        name=name,
        role=role,
        cpu_cores=int(number(doc, "cpu_cores", "cpus", "cpu") or 0),
        memory_mib=int(number(doc, *MEMORY_KEYS) or 0),
        disk_gib=_disk_gib(doc),
        nics=tuple(Nic(nic, mac, ip, subnet_of(ip, subnets)) for nic, mac, ip in nics(doc)),
    )


def _disk_gib(doc: Mapping[str, Any]) -> int:
    """The sum of the sizes of a node's disks, a list or keyed by device."""
    total = 0
    for disk, place in zip(disks(doc), item_places(doc.get("disks")), strict=True):
        try:
            total += math.ceil(number(disk, "size_gib") or 0)
        except MisreadFact as exc:
            raise exc.under("disks", *place) from None
    return total
