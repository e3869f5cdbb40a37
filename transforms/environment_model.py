"""The old environment as the adaptation step needs it: a typed, frozen model.

One reader of texts: `environment_from_files(texts, components, dependencies)` reads the documents
of an environment (the catalog path: file contents from the ISOs, components and dependencies from
the index; `omni_recovery.envstate.folder` hands over a folder's the same way).
Everything here is plain data (frozen dataclasses and tuples); the transforms in this package read it
and never change it. Components and dependencies are the recovery index's own (`read_topology`).

Sets another writer made follow only the backup-format spec, which names fewer fields than this
project writes; what is missing is derived, never required: which VM runs what (`_claims`: this
project's `vm_id`/`vm` fields, else the index's attributes, else the VM carrying the component's
address or named after it), the old nodes (`_read_nodes`: `nodes/*.yaml`, else the Directors'
`hardware.yaml` and the index's hardware table), dependency strengths (the index's, authoritative),
and the other shapes a spec-following document may take (plain names, lists for mappings).
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any

import yaml

from omni_recovery.backupset.index_db import COMPONENT_KINDS, PRIORITIES, Component, Dependency, HardwareNode
from omni_recovery.errors import EnvironmentStateError, RecoveryError
from omni_recovery.yaml_text import load_yaml

VM_ROLES = ("orchestrator", "service", "app")
APP_VM_OVERHEAD_MIB = 1024


@dataclass(frozen=True)
class Nic:
    name: str
    mac: str
    ip: str | None
    subnet: str | None  # name of the old subnet holding `ip`


@dataclass(frozen=True)
class Node:
    """One physical node of the old site (a Director host, compute or storage node)."""

    name: str
    role: str  # director | compute | storage
    cpu_cores: int
    memory_mib: int
    disk_gib: int
    nics: tuple[Nic, ...] = ()


@dataclass(frozen=True)
class VmNetwork:
    subnet: str
    ip: str


@dataclass(frozen=True)
class VM:
    """One VM of a Director: an Orchestrator, a core service or an application host."""

    vm_id: str
    name: str
    role: str  # orchestrator | service | app
    cpu: int
    memory_mib: int
    disk_gib: int
    director: str
    owner: str  # component id: orchestrator:x, service:x or application:x
    networks: tuple[VmNetwork, ...] = ()


@dataclass(frozen=True)
class Director:
    director_id: str
    ring_id: str
    node: str
    addresses: tuple[tuple[str, str], ...]  # (subnet name, address)
    storage_paths: tuple[tuple[str, str], ...]  # (name, absolute old path)
    reserved_cpu: int
    reserved_memory_mib: int
    ring_peers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Orchestrator:
    orchestrator_id: str
    cluster_id: str
    vm_id: str
    director: str
    address: str | None


@dataclass(frozen=True)
class Service:
    name: str
    category: str  # storage | core
    role: str
    vm_id: str | None
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class Container:
    name: str
    cpu: float
    memory_mib: int
    replicas: int


@dataclass(frozen=True)
class Application:
    name: str
    priority: str  # critical | standard | low
    orchestrator: str
    vm_id: str | None
    containers: tuple[Container, ...] = ()
    volumes: tuple[str, ...] = ()
    depends_on: tuple[tuple[str, str], ...] = ()  # (app, hard|soft)


@dataclass(frozen=True)
class Volume:
    app: str
    name: str
    size_gib: float
    storage_class: str
    mount_path: str
    source_path: str

    @property
    def component_id(self) -> str:
        return f"volume:{self.app}/{self.name}"


@dataclass(frozen=True)
class Subnet:
    name: str
    cidr: str
    gateway: str | None


@dataclass(frozen=True)
class Route:
    destination: str
    gateway: str | None
    subnet: str
    metric: int


@dataclass(frozen=True)
class Policy:
    name: str
    action: str
    source: tuple[tuple[str, str], ...]  # e.g. (("subnet", "management"),)
    target: tuple[tuple[str, str], ...]
    protocol: str
    ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class DnsRecord:
    name: str
    type: str
    address: str
    component: str | None


@dataclass(frozen=True)
class Link:
    source: str
    target: str
    ports: tuple[int, ...]
    protocol: str


@dataclass(frozen=True)
class Network:
    subnets: tuple[Subnet, ...] = ()
    routes: tuple[Route, ...] = ()
    policies: tuple[Policy, ...] = ()
    dns_zone: str = ""
    dns_servers: tuple[str, ...] = ()
    records: tuple[DnsRecord, ...] = ()
    links: tuple[Link, ...] = ()

    def subnet(self, name: str) -> Subnet | None:
        return next((s for s in self.subnets if s.name == name), None)


@dataclass(frozen=True)
class Environment:
    """The old environment: hardware, Directors and their VMs, workloads, volumes, network, index."""

    name: str
    nodes: tuple[Node, ...]
    directors: tuple[Director, ...]
    vms: tuple[VM, ...]
    orchestrators: tuple[Orchestrator, ...] = ()
    services: tuple[Service, ...] = ()
    applications: tuple[Application, ...] = ()
    volumes: tuple[Volume, ...] = ()
    network: Network = field(default_factory=Network)
    components: tuple[Component, ...] = ()
    dependencies: tuple[Dependency, ...] = ()

    def vm(self, vm_id: str) -> VM:
        for vm in self.vms:
            if vm.vm_id == vm_id:
                return vm
        raise KeyError(vm_id)

    def director(self, director_id: str) -> Director:
        for director in self.directors:
            if director.director_id == director_id:
                return director
        raise KeyError(director_id)

    def application(self, name: str) -> Application:
        for app in self.applications:
            if app.name == name:
                return app
        raise KeyError(name)

    def component_ids(self) -> frozenset[str]:
        return frozenset(c.component_id for c in self.components)

    def priority_of_vm(self, vm: VM) -> str:
        """critical for Orchestrators and core services; the application's priority otherwise."""
        if vm.role != "app":
            return "critical"
        name = vm.owner.partition(":")[2]
        return next((a.priority for a in self.applications if a.name == name), "standard")


def app_vm_size(containers: tuple[Container, ...]) -> tuple[int, int]:
    """(cpu, memory_mib) of an application VM holding `containers` (the demo's and OmniCloud's rule)."""
    cpu = max(1, math.ceil(sum(c.cpu * c.replicas for c in containers) - 1e-9))
    return cpu, sum(c.memory_mib * c.replicas for c in containers) + APP_VM_OVERHEAD_MIB


# -- reading the files -------------------------------------------------------------------------------

# ring and cluster of Directors and Orchestrators whose files name none
DEFAULT_GROUP = "default"
_KIND_ROLE = {"orchestrator": "orchestrator", "service": "service", "application": "app"}
_ROLE_KIND = {
    "orchestrator": "orchestrator",
    "service": "service",
    "app": "application",
    "application": "application",
}
_NAME_PREFIXES = {
    "orchestrator": ("orch", "orchestrator"),
    "service": ("svc", "service"),
    "application": ("app", "application"),
}
_VM_KEYS = {"orchestrator": ("vm_id", "vm"), "service": ("vm", "vm_id"), "application": ("vm", "vm_id")}
_TARGET_KEYS = ("app", "application", "service", "name", "component")


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


class _Index:
    """The recovery index as the reading needs it: attributes, parents and priorities of components,
    dependencies (authoritative for their strength) and hardware."""

    def __init__(
        self,
        components: tuple[Component, ...],
        dependencies: tuple[Dependency, ...],
        hardware: tuple[HardwareNode, ...],
    ) -> None:
        self.components = components
        self.dependencies = dependencies
        self.hardware = hardware
        self._by_id = {c.component_id: c for c in components}

    def attribute(self, component_id: str, *keys: str) -> str | None:
        component = self._by_id.get(component_id)
        if component is None or not isinstance(component.attributes, Mapping):
            return None
        return _text(component.attributes, *keys)

    def parent_name(self, component_id: str, kind: str) -> str | None:
        component = self._by_id.get(component_id)
        parent = component.parent_id if component else None
        return parent.partition(":")[2] if parent and parent.startswith(f"{kind}:") else None

    def priority(self, component_id: str) -> str | None:
        component = self._by_id.get(component_id)
        return component.priority if component else None


class _Files:
    """The environment's documents by environment path; `current` is the one read (or parsed) last."""

    current: str = "the environment"

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = files

    def text(self, rel: str) -> str:
        self.current = rel
        if rel not in self.files:
            raise EnvironmentStateError(f"{rel}: missing")
        return self.files[rel]

    def exists(self, rel: str) -> bool:
        return rel in self.files

    def names(self, rel: str, suffix: str = "") -> list[str]:
        """Sorted names directly under folder `rel`: sub-folders, or files ending in `suffix` (stripped)."""
        prefix = rel.rstrip("/") + "/"
        found = set()
        for path in self.files:
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :].split("/")
            if suffix and len(rest) == 1 and rest[0].endswith(suffix):
                found.add(rest[0][: -len(suffix)])
            elif not suffix and len(rest) > 1:
                found.add(rest[0])
        return sorted(found)


@dataclass(frozen=True)
class _Workloads:
    """The Orchestrator, service and application documents, by id, with the path each was read from."""

    orchestrators: dict[str, tuple[str, dict[str, Any]]]
    services: dict[str, tuple[str, dict[str, Any]]]
    applications: dict[str, tuple[str, dict[str, Any]]]

    @classmethod
    def read(cls, src: _Files) -> _Workloads:
        def docs(folder: str, file: str) -> dict[str, tuple[str, dict[str, Any]]]:
            paths = {n: f"{folder}/{n}/{file}" for n in src.names(folder)}
            return {n: (rel, _yaml(src, rel)) for n, rel in paths.items()}

        return cls(
            docs("orchestrators", "config.yaml"),
            docs("services", "service.yaml"),
            docs("applications", "app.yaml"),
        )

    def documents(self) -> list[tuple[str, dict[str, Any]]]:
        """(component id, document) of every Orchestrator, then service, then application."""
        groups = (
            ("orchestrator", self.orchestrators),
            ("service", self.services),
            ("application", self.applications),
        )
        return [(f"{kind}:{n}", doc) for kind, docs in groups for n, (_, doc) in docs.items()]


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


# -- Directors, their VMs and nodes ------------------------------------------------------------------


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


# -- who runs on which VM ----------------------------------------------------------------------------


def _claims(work: _Workloads, index: _Index, vms: list[VM], network: Network) -> dict[str, str]:
    """component id → the vm_id it runs on, as its document names it (`vm_id` of an Orchestrator's
    config, `vm` of a service or application: this project's fields) or the index's attributes do;
    for the rest, inferred from the VMs (`_infer_claims`)."""
    claims: dict[str, str] = {}
    for cid, doc in work.documents():
        vm = _text(doc, *_VM_KEYS[cid.partition(":")[0]]) or index.attribute(cid, "vm_id", "vm")
        if vm is not None:
            claims[cid] = vm
    _infer_claims(claims, [cid for cid, _ in work.documents()], vms, _known_addresses(work, network))
    return claims


def _known_addresses(work: _Workloads, network: Network) -> dict[str, str]:
    """address → component: DNS records naming their component, and Orchestrators' `address`."""
    found = {r.address: r.component for r in network.records if r.component}
    for oid, (_, cfg) in work.orchestrators.items():
        address = _ip_text(cfg.get("address"))
        if address:
            found[address] = f"orchestrator:{oid}"
    return found


def _infer_claims(
    claims: dict[str, str], components: list[str], vms: list[VM], addresses: dict[str, str]
) -> None:
    """Give each component without a VM a free VM of a fitting role: first one carrying the component's
    address, then one named after it (`billing`, `app-billing`, `svc-auth`, `orch-1`, …)."""
    taken = set(claims.values())
    free = [vm for vm in vms if vm.vm_id not in taken]

    def carries(vm: VM, cid: str) -> bool:
        return any(addresses.get(n.ip) == cid for n in vm.networks)

    for matches in (carries, _named_for):
        for cid in components:
            if cid in claims:
                continue
            kind = cid.partition(":")[0]
            vm = next(
                (v for v in free if _ROLE_KIND.get(v.role.lower(), kind) == kind and matches(v, cid)), None
            )
            if vm is not None:
                claims[cid] = vm.vm_id
                free.remove(vm)


def _named_for(vm: VM, cid: str) -> bool:
    kind, _, name = cid.partition(":")
    names = {name, f"{name}-vm", *(f"{prefix}-{name}" for prefix in _NAME_PREFIXES[kind])}
    return vm.name.lower() in {n.lower() for n in names}


def _owned(vms: list[VM], claims: dict[str, str]) -> tuple[VM, ...]:
    """The VMs with their owner and a role that agrees with it. A VM no component claims stays with its
    Director (owner `director:{id}`): it is still placed and recreated, never scaled unless it says it
    hosts an application."""
    owners = {vm_id: cid for cid, vm_id in claims.items()}
    result = []
    for vm in vms:
        owner = owners.get(vm.vm_id)
        if owner is None:
            role = _KIND_ROLE.get(_ROLE_KIND.get(vm.role.lower(), ""), "service")
            result.append(replace(vm, owner=f"director:{vm.director}", role=role))
        else:
            result.append(replace(vm, owner=owner, role=_KIND_ROLE[owner.partition(":")[0]]))
    return tuple(result)


# -- Orchestrators, services, applications, volumes --------------------------------------------------


def _read_orchestrator(
    src: _Files,
    oid: str,
    rel: str,
    cfg: dict[str, Any],
    claims: dict[str, str],
    vms: tuple[VM, ...],
    index: _Index,
) -> Orchestrator:
    src.current = rel
    cid = f"orchestrator:{oid}"
    # without a VM of its own, the id only names the Orchestrator's VM in the plan
    vm_id = claims.get(cid, f"{oid}-vm")
    host = next((v.director for v in vms if v.vm_id == vm_id), str(cfg.get("director", "")))
    address = cfg.get("address")
    return Orchestrator(
        oid,
        _text(cfg, "cluster_id", "cluster") or index.attribute(cid, "cluster_id") or DEFAULT_GROUP,
        vm_id,
        host,
        None if address is None else _ip_text(address) or str(address),
    )


def _read_service(
    src: _Files, name: str, rel: str, doc: dict[str, Any], claims: dict[str, str], index: _Index
) -> Service:
    src.current = rel
    cid = f"service:{name}"
    return Service(
        name=name,
        category=_text(doc, "category") or index.attribute(cid, "category") or "core",
        role=_text(doc, "role") or index.attribute(cid, "role") or name,
        vm_id=claims.get(cid),
        depends_on=tuple(target for target, _ in dependencies(doc.get("depends_on"))),
    )


def _read_app(
    src: _Files, name: str, rel: str, doc: dict[str, Any], claims: dict[str, str], index: _Index
) -> Application:
    src.current = rel
    cid = f"application:{name}"
    containers = tuple(
        Container(
            name=str(c.get("name", "")),
            cpu=_num(c, "cpu"),
            memory_mib=int(_num(c, "memory_mib")),
            replicas=int(_num(c, "replicas", 1)),
        )
        for c in _mappings(doc.get("containers"))
    )
    return Application(
        name=name,
        priority=_priority(_text(doc, "priority"), index.priority(cid)),
        orchestrator=_text(doc, "orchestrator") or index.parent_name(cid, "orchestrator") or "",
        vm_id=claims.get(cid),
        containers=containers,
        volumes=tuple(v for v in map(_volume_name, _listed(doc.get("volumes"))) if v),
        depends_on=_app_dependencies(name, doc.get("depends_on"), index),
    )


def _volume_name(item: Any) -> str | None:
    """{name, mount_path} (the spec's) or a plain name."""
    return _text(item, "name") if isinstance(item, Mapping) else _text({"name": item}, "name")


def _priority(*candidates: str | None) -> str:
    return next((p.lower() for p in candidates if p and p.lower() in PRIORITIES), "standard")


def dependencies(raw: Any) -> list[tuple[str, str]]:
    """(name, hard|soft) of each `depends_on` item: a plain name (hard), {app|service|name: x, strength: s}
    (ours: {app, strength}), or {x: s}; a `kind:` prefix is dropped, an item naming nothing skipped.
    The one reading of depends_on: the plan and the catalog both use it."""
    if isinstance(raw, Mapping) and not any(k in raw for k in _TARGET_KEYS):
        raw = [{k: v} for k, v in raw.items()]
    found = []
    for item in _listed(raw):
        strength: str | None = None
        if isinstance(item, Mapping):
            target, strength = _text(item, *_TARGET_KEYS), _text(item, "strength")
            if target is None and len(item) == 1 and "strength" not in item:
                key, value = next(iter(item.items()))
                target, strength = str(key), value if isinstance(value, str) else None
        else:
            target = _text({"x": item}, "x")
        if target:
            kind, sep, rest = target.partition(":")
            found.append((rest if sep and kind in COMPONENT_KINDS else target, _strength(strength)))
    return found


def _strength(value: str | None) -> str:
    return "soft" if value is not None and value.strip().lower() == "soft" else "hard"


def _app_dependencies(name: str, raw: Any, index: _Index) -> tuple[tuple[str, str], ...]:
    """The application's dependencies on others: app.yaml's, with the index's strength where the index
    lists them (it is authoritative) and what only the index lists added."""
    deps = dict(dependencies(raw))
    cid = f"application:{name}"
    for dep in index.dependencies:
        if dep.component_id == cid and dep.depends_on_id.startswith("application:"):
            deps[dep.depends_on_id.partition(":")[2]] = dep.strength
    return tuple(deps.items())


def _read_volumes(src: _Files) -> tuple[Volume, ...]:
    volumes = []
    for app in src.names("volumes"):
        for vol in src.names(f"volumes/{app}"):
            doc = _yaml(src, f"volumes/{app}/{vol}/volume.yaml")
            volumes.append(
                Volume(
                    app=app,
                    name=vol,
                    size_gib=_num(doc, "size_gib"),
                    storage_class=str(doc.get("storage_class", "")),
                    mount_path=str(doc.get("mount_path", "")),
                    source_path=str(doc.get("source_path", "")),
                )
            )
    return tuple(volumes)


# -- network -----------------------------------------------------------------------------------------


def _read_network(src: _Files) -> Network:
    subnets = _subnets(_document(src, "network/subnets.yaml"))
    dns = _optional(src, "network/dns.yaml")
    return Network(
        subnets=subnets,
        routes=tuple(r for r in map(_route, _listing(src, "network/routes.yaml", "routes")) if r),
        policies=tuple(_policy(p, subnets) for p in _listing(src, "network/policies.yaml", "policies")),
        dns_zone=_text(dns, "zone", "domain") or "",
        dns_servers=tuple(str(s) for s in _listed(dns.get("servers", dns.get("nameservers")))),
        records=tuple(r for r in map(_record, _mappings(dns.get("records"))) if r),
        links=tuple(x for x in map(_link, _listing(src, "network/connectivity.yaml", "links")) if x),
    )


def _subnets(doc: Any) -> tuple[Subnet, ...]:
    """{subnets: {name: {cidr, gateway}}} (ours), the same without `subnets:`, a list of {name, cidr,
    gateway}, or {name: cidr}; entries without a CIDR are not subnets."""
    raw = doc.get("subnets", doc) if isinstance(doc, Mapping) else doc
    if isinstance(raw, Mapping):
        items = [(str(k), v) for k, v in raw.items()]
    else:
        items = [(_text(s, "name") or "", s) for s in _mappings(raw)]
    found = (_subnet(name, value) for name, value in items)
    return tuple(sorted((s for s in found if s), key=lambda s: s.name))


def _subnet(name: str, value: Any) -> Subnet | None:
    if isinstance(value, Mapping):
        cidr, gateway = _text(value, "cidr", "network", "prefix"), _text(value, "gateway")
    else:
        cidr, gateway = (str(value) if isinstance(value, str) else None), None
    if not name or cidr is None or "/" not in cidr:
        return None
    ipaddress.ip_network(cidr, strict=False)  # a malformed CIDR is refused here, naming the file
    return Subnet(name, cidr, gateway)


def _route(r: Any) -> Route | None:
    destination = _text(r, "destination", "dst", "to") if isinstance(r, Mapping) else None
    if destination is None:
        return None
    return Route(
        destination=destination,
        gateway=_text(r, "gateway", "via"),
        subnet=_text(r, "subnet", "interface") or "",
        metric=int(_num(r, "metric")),
    )


def _policy(p: Any, subnets: tuple[Subnet, ...]) -> Policy:
    p = p if isinstance(p, Mapping) else {"name": str(p)}
    return Policy(
        name=str(p.get("name", "")),
        action=str(p.get("action", "allow")),
        source=_endpoint(p.get("from", p.get("source")), subnets),
        target=_endpoint(p.get("to", p.get("target")), subnets),
        protocol=str(p.get("protocol", "any")),
        ports=_ports(p.get("ports")),
    )


def _endpoint(raw: Any, subnets: tuple[Subnet, ...]) -> tuple[tuple[str, str], ...]:
    """A policy side: {subnet|service|app: name} (ours), or a bare name (a subnet's when one is named so)."""
    if isinstance(raw, Mapping):
        return tuple(sorted((str(k), str(v)) for k, v in raw.items()))
    if raw is None:
        return ()
    names = {s.name for s in subnets}
    return tuple(sorted(("subnet" if str(v) in names else "name", str(v)) for v in _listed(raw)))


def _ports(raw: Any) -> tuple[int, ...]:
    """Port numbers; "8080/tcp" counts as 8080, ranges and names are left out."""
    ports = []
    for p in _listed(raw):
        text = str(p).partition("/")[0].strip()
        if text.isdigit():
            ports.append(int(text))
    return tuple(ports)


def _record(r: Mapping[str, Any]) -> DnsRecord | None:
    name, address = _text(r, "name"), _text(r, "address", "value", "ip", "data")
    if name is None or address is None:
        return None
    return DnsRecord(name, str(r.get("type", "A")), address, _text(r, "component"))


def _link(x: Any) -> Link | None:
    source = _text(x, "from", "source") if isinstance(x, Mapping) else None
    target = _text(x, "to", "target") if isinstance(x, Mapping) else None
    if source is None or target is None:
        return None
    return Link(source, target, _ports(x.get("ports")), str(x.get("protocol", "tcp")))


def subnet_of(address: str | None, subnets: tuple[Subnet, ...]) -> str | None:
    """Name of the subnet holding `address`, or None."""
    if address is None:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return next((s.name for s in subnets if ip in ipaddress.ip_network(s.cidr, strict=False)), None)


# -- documents and values ----------------------------------------------------------------------------


def _document(src: _Files, rel: str) -> Any:
    try:
        return load_yaml(src.text(rel))
    except yaml.YAMLError as exc:
        raise EnvironmentStateError(f"{rel}: not valid YAML: {exc}") from exc


def _yaml(src: _Files, rel: str) -> dict[str, Any]:
    return _map(_document(src, rel), rel)


def _optional(src: _Files, rel: str) -> dict[str, Any]:
    return _yaml(src, rel) if src.exists(rel) else {}


def _listing(src: _Files, rel: str, key: str) -> list[Any]:
    """The items of an optional document (see `document_items`)."""
    return document_items(_document(src, rel), key) if src.exists(rel) else []


def document_items(doc: Any, key: str) -> list[Any]:
    """The items of a document: its `key` list (ours), or the document itself when a list; a mapping
    keyed by name gives its values as objects named after their key (a bare value as `value`). The
    catalog reads them so too."""
    raw = doc.get(key, doc) if isinstance(doc, Mapping) else doc
    if isinstance(raw, Mapping):
        return [
            {"name": k, **v} if isinstance(v, Mapping) else {"name": k, "value": v} for k, v in raw.items()
        ]
    return _listed(raw)


def first_of(doc: Mapping[str, Any], *keys: str) -> Any:
    """The value of the first of `keys` that `doc` has (field names another writer may use)."""
    return next((doc[k] for k in keys if k in doc), None)


def _json(src: _Files, rel: str) -> dict[str, Any]:
    try:
        data = json.loads(src.text(rel))
    except json.JSONDecodeError as exc:
        raise EnvironmentStateError(f"{rel}: not valid JSON: {exc}") from exc
    return _map(data, rel)


def _map(value: Any, rel: str, what: str = "the document") -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise EnvironmentStateError(f"{rel}: {what} must be a mapping, found {type(value).__name__}")
    return dict(value)


def _listed(value: Any) -> list[Any]:
    """A list as a list, nothing as [], anything else as a list of one."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in _listed(value) if isinstance(v, Mapping)]


def _text(doc: Mapping[str, Any], *keys: str) -> str | None:
    """The first of `keys` that `doc` sets to a non-empty scalar, as text."""
    for key in keys:
        value = doc.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def _num(doc: Mapping[str, Any], key: str, default: float = 0) -> float:
    value = doc.get(key)
    return default if value is None else float(value)


def _ip_text(value: Any) -> str | None:
    """An IP address given as text, without a /prefix; None for anything else."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip().partition("/")[0]
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None
    return text


# -- the adaptation's vocabulary, shared by every transform ----------------------------------------

ADAPTATION_MODES = ("basic", "advanced")


class AdaptationError(RecoveryError):
    """The environment cannot be adapted onto the inventory; the message says what does not fit and by
    how much."""


@dataclass(frozen=True)
class Adaptation:
    """One change the adaptation made: `kind` (node, placement, scaling, subnet, address, mac, route,
    policy, dns, link, storage-path, storage-class, ...), the `subject` changed, `old` → `new`, and why."""

    kind: str
    subject: str
    old: str
    new: str
    reason: str


@dataclass(frozen=True)
class AdaptationPolicy:
    """The stated bounds of the adaptation.

    cpu_overcommit: VM vCPUs a Director may run per physical core left after its own reservation.
    scale_min / scale_max: bounds of the factor applied to an application VM's CPU and memory.
    scale_up_fill: advanced mode scales applications up only while the Directors stay below this fill.
    """

    cpu_overcommit: float = 2.0
    scale_min: float = 0.5
    scale_max: float = 2.0
    scale_up_fill: float = 0.7
