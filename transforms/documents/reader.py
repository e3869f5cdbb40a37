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
from pathlib import PurePosixPath
from typing import Any

from omni_recovery.backupset.index_db import Component, Dependency, HardwareNode
from omni_recovery.errors import EnvironmentStateError
from transforms.documents.claims import _claims, _owned
from transforms.documents.model import VM, Director, Environment, Nic, Node, Subnet, VmNetwork
from transforms.documents.network import _read_network, subnet_of
from transforms.documents.sources import (
    DEFAULT_GROUP,
    _Files,
    _Index,
    _ip_text,
    _json,
    _listed,
    _map,
    _mappings,
    _num,
    _optional,
    _text,
    _Workloads,
    _yaml,
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
    addresses = _addresses(cfg.get("addresses"), subnets)
    res = cfg.get("reservations") or {}
    res = res if isinstance(res, Mapping) else {}
    return Director(
        director_id=did,
        ring_id=_text(cfg, "ring_id", "ring")
        or index.attribute(f"director:{did}", "ring_id")
        or DEFAULT_GROUP,
        node=_director_node(did, cfg, host, index, addresses),
        addresses=addresses,
        storage_paths=_storage_paths(cfg.get("storage_paths")),
        reserved_cpu=int(_num(res, "cpu_cores")),
        reserved_memory_mib=int(_num(res, "memory_mib")),
        ring_peers=tuple(str(p) for p in _listed(cfg.get("ring_peers", cfg.get("peers")))),
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


def _addresses(raw: Any, subnets: tuple[Subnet, ...]) -> tuple[tuple[str, str], ...]:
    """(subnet name, address) pairs from {subnet: address} (ours) or a list of addresses or
    {subnet|name, ip|address} items, named after the subnet holding them."""
    if isinstance(raw, Mapping):
        pairs = [(str(k), _address_of(v)) for k, v in raw.items()]
    else:
        pairs = []
        for i, item in enumerate(_listed(raw)):
            address = _address_of(item)
            label = _text(item, "subnet", "name", "network") if isinstance(item, Mapping) else None
            pairs.append((label or subnet_of(_ip_text(address), subnets) or f"address-{i + 1}", address))
    return tuple(sorted((k, v) for k, v in pairs if v))


def _address_of(value: Any) -> str:
    if isinstance(value, Mapping):
        return _text(value, "ip", "address") or ""
    return "" if value is None else str(value)


def _storage_paths(raw: Any) -> tuple[tuple[str, str], ...]:
    """(name, path) pairs from {name: path} (ours) or a list of paths or {name, path} items."""
    if isinstance(raw, Mapping):
        return tuple(sorted((str(k), str(v)) for k, v in raw.items()))
    pairs = []
    for item in _listed(raw):
        path = _text(item, "path") if isinstance(item, Mapping) else str(item)
        label = _text(item, "name") if isinstance(item, Mapping) else None
        if path:
            pairs.append((label or PurePosixPath(path).name or path, path))
    return tuple(sorted(pairs))


def _read_vms(src: _Files, did: str, subnets: tuple[Subnet, ...]) -> list[VM]:
    rel = f"directors/{did}/state.json"
    vms = []
    for raw in _json(src, rel).get("vms") or []:
        vm = _map(raw, rel, "a VM")
        vm_id = str(vm["vm_id"])
        vms.append(
            VM(
                vm_id=vm_id,
                name=str(vm.get("name", vm_id)),
                role=str(vm.get("role") or ""),  # settled by `_owned`
                cpu=math.ceil(_num(vm, "cpu")),
                memory_mib=int(_num(vm, "memory_mib")),
                disk_gib=math.ceil(_num(vm, "disk_gib")),
                director=did,
                owner="",
                networks=_vm_networks(vm.get("networks"), subnets),
            )
        )
    return vms


def _vm_networks(raw: Any, subnets: tuple[Subnet, ...]) -> tuple[VmNetwork, ...]:
    """A VM's addresses from [{subnet, ip}] (ours), {network|name, address} items, plain addresses
    ("10.0.8.5", "10.0.8.5/22") or {subnet: address}; a network without an address has none to keep."""
    if isinstance(raw, Mapping):
        raw = [
            {"subnet": k, **v} if isinstance(v, Mapping) else {"subnet": k, "ip": v} for k, v in raw.items()
        ]
    known = {s.name for s in subnets}
    result = []
    for item in _listed(raw):
        label = _text(item, "subnet", "network", "name") if isinstance(item, Mapping) else None
        ip = _ip_text(_text(item, "ip", "address", "ipv4") if isinstance(item, Mapping) else item)
        if ip is not None:
            subnet = label if label in known else subnet_of(ip, subnets) or label or ""
            result.append(VmNetwork(subnet, ip))
    return tuple(result)


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
    nics = tuple(
        Nic(str(n.get("name", "")), str(n.get("mac", "")), ip, subnet_of(ip, subnets))
        for n in _mappings(doc.get("nics"))
        for ip in [_ip_text(n.get("ip"))]
    )
    return Node(
        name=name,
        role=role,
        cpu_cores=int(_num(doc, "cpu_cores")),
        memory_mib=int(_num(doc, "memory_mib")),
        disk_gib=sum(math.ceil(_num(d, "size_gib")) for d in _mappings(doc.get("disks"))),
        nics=nics,
    )
