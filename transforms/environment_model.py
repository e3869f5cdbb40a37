"""The old environment as the adaptation step needs it: a typed, frozen model.

One model, two sources: `environment_from_folder(root)` reads an environment state folder (tests,
demo); `environment_from_files(texts, components, dependencies)` reads the same files from their
texts (the catalog path: file contents from the ISOs, components and dependencies from the index).
Everything here is plain data (frozen dataclasses and tuples); the transforms in this package read it
and never change it. Components and dependencies are the recovery index's own (`read_topology`).
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from omni_recovery.backupset.index_db import Component, Dependency
from omni_recovery.envstate.topology import read_topology
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


def environment_from_folder(root: Path) -> Environment:
    """Read the environment state folder at `root` (see docs/environment-state.md) into the model.

    Components and dependencies come from `read_topology` (which also checks every reference);
    malformed files raise EnvironmentStateError naming the file.
    """
    root = Path(root)
    index = read_topology(root)
    return _environment(_FolderFiles(root), tuple(index.components), tuple(index.dependencies), root.name)


def environment_from_files(
    files: Mapping[str, str],
    components: tuple[Component, ...],
    dependencies: tuple[Dependency, ...],
    name: str = "environment",
) -> Environment:
    """The model from the texts of an environment's files, keyed by environment path (`environment.yaml`,
    `directors/dir-1/config.yaml`, …; volume data not needed), with the index's components and
    dependencies — the path the catalog takes (ISO paths map back with `envstate.model.env_path`)."""
    return _environment(_MappingFiles(files), components, dependencies, name)


class _Files:
    """Where the environment's YAML/JSON files are read from; `current` is the file read last."""

    current: str = "the environment"

    def text(self, rel: str) -> str:
        raise NotImplementedError

    def exists(self, rel: str) -> bool:
        raise NotImplementedError

    def names(self, rel: str, suffix: str = "") -> list[str]:
        """Sorted names directly under folder `rel`: sub-folders, or files ending in `suffix` (stripped)."""
        raise NotImplementedError


class _FolderFiles(_Files):
    def __init__(self, root: Path) -> None:
        self.root = root

    def text(self, rel: str) -> str:
        self.current = rel
        try:
            return (self.root / rel).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise EnvironmentStateError(f"{rel}: cannot be read: {exc}") from exc

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def names(self, rel: str, suffix: str = "") -> list[str]:
        folder = self.root / rel
        if not folder.is_dir():
            return []
        if suffix:
            return sorted(p.name[: -len(suffix)] for p in folder.iterdir() if p.name.endswith(suffix))
        return sorted(p.name for p in folder.iterdir() if p.is_dir())


class _MappingFiles(_Files):
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


def _environment(
    src: _Files, components: tuple[Component, ...], dependencies: tuple[Dependency, ...], name: str
) -> Environment:
    try:
        return _read_environment(src, components, dependencies, name)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EnvironmentStateError(f"{src.current}: malformed ({type(exc).__name__}: {exc})") from exc


def _read_environment(
    src: _Files, components: tuple[Component, ...], dependencies: tuple[Dependency, ...], name: str
) -> Environment:
    env_doc = _yaml(src, "environment.yaml")
    network = _read_network(src)
    nodes = tuple(_read_node(src, n, network.subnets) for n in src.names("nodes", ".yaml"))
    directors: list[Director] = []
    vms: list[VM] = []
    owners = _vm_owners(src)
    for did in src.names("directors"):
        rel = f"directors/{did}/config.yaml"
        cfg = _yaml(src, rel)
        res = _map(cfg.get("reservations") or {}, rel, "reservations")
        directors.append(
            Director(
                director_id=did,
                ring_id=str(cfg.get("ring_id", "")),
                node=str(cfg.get("node", "")),
                addresses=tuple(
                    sorted(
                        (str(k), str(v)) for k, v in _map(cfg.get("addresses", {}), rel, "addresses").items()
                    )
                ),
                storage_paths=tuple(
                    sorted(
                        (str(k), str(v))
                        for k, v in _map(cfg.get("storage_paths", {}), rel, "storage_paths").items()
                    )
                ),
                reserved_cpu=int(res.get("cpu_cores", 0)),
                reserved_memory_mib=int(res.get("memory_mib", 0)),
                ring_peers=tuple(str(p) for p in cfg.get("ring_peers") or ()),
            )
        )
        state_rel = f"directors/{did}/state.json"
        state = _json(src, state_rel)
        for raw in state.get("vms") or []:
            vm = _map(raw, state_rel, "a VM")
            vm_id = str(vm["vm_id"])
            vms.append(
                VM(
                    vm_id=vm_id,
                    name=str(vm.get("name", vm_id)),
                    role=str(vm.get("role", "app")),
                    cpu=math.ceil(float(vm.get("cpu", 0))),
                    memory_mib=int(vm.get("memory_mib", 0)),
                    disk_gib=math.ceil(float(vm.get("disk_gib", 0))),
                    director=did,
                    owner=owners.get(vm_id, f"vm:{vm_id}"),
                    networks=tuple(
                        VmNetwork(str(n["subnet"]), str(n["ip"])) for n in vm.get("networks") or ()
                    ),
                )
            )
    orchestrators = []
    for oid in src.names("orchestrators"):
        cfg = _yaml(src, f"orchestrators/{oid}/config.yaml")
        vm_id = str(cfg["vm_id"])
        host = next((v.director for v in vms if v.vm_id == vm_id), str(cfg.get("director", "")))
        address = cfg.get("address")
        orchestrators.append(
            Orchestrator(
                oid, str(cfg.get("cluster_id", "")), vm_id, host, None if address is None else str(address)
            )
        )
    services = []
    for name in src.names("services"):
        doc = _yaml(src, f"services/{name}/service.yaml")
        svc_vm = doc.get("vm")
        services.append(
            Service(
                name=name,
                category=str(doc.get("category", "core")),
                role=str(doc.get("role", name)),
                vm_id=None if svc_vm is None else str(svc_vm),
                depends_on=tuple(str(d) for d in doc.get("depends_on") or ()),
            )
        )
    applications = [_read_app(src, a) for a in src.names("applications")]
    volumes = []
    for app in src.names("volumes"):
        for vol in src.names(f"volumes/{app}"):
            doc = _yaml(src, f"volumes/{app}/{vol}/volume.yaml")
            volumes.append(
                Volume(
                    app=app,
                    name=vol,
                    size_gib=float(doc.get("size_gib", 0)),
                    storage_class=str(doc.get("storage_class", "")),
                    mount_path=str(doc.get("mount_path", "")),
                    source_path=str(doc.get("source_path", "")),
                )
            )
    return Environment(
        name=str(env_doc.get("name", name)),
        nodes=nodes,
        directors=tuple(directors),
        vms=tuple(vms),
        orchestrators=tuple(orchestrators),
        services=tuple(services),
        applications=tuple(applications),
        volumes=tuple(volumes),
        network=network,
        components=components,
        dependencies=dependencies,
    )


def _vm_owners(src: _Files) -> dict[str, str]:
    owners: dict[str, str] = {}
    for oid in src.names("orchestrators"):
        owners[str(_yaml(src, f"orchestrators/{oid}/config.yaml").get("vm_id"))] = f"orchestrator:{oid}"
    for name in src.names("services"):
        vm = _yaml(src, f"services/{name}/service.yaml").get("vm")
        if vm is not None:
            owners[str(vm)] = f"service:{name}"
    for app in src.names("applications"):
        vm = _yaml(src, f"applications/{app}/app.yaml").get("vm")
        if vm is not None:
            owners[str(vm)] = f"application:{app}"
    return owners


def _read_node(src: _Files, name: str, subnets: tuple[Subnet, ...]) -> Node:
    rel = f"nodes/{name}.yaml"
    doc = _yaml(src, rel)
    nics = tuple(
        Nic(str(n.get("name", "")), str(n.get("mac", "")), ip, subnet_of(ip, subnets))
        for n in doc.get("nics") or ()
        for ip in [None if n.get("ip") is None else str(n["ip"])]
    )
    return Node(
        name=str(doc.get("hostname", name)),
        role=str(doc.get("role", "compute")),
        cpu_cores=int(doc.get("cpu_cores", 0)),
        memory_mib=int(doc.get("memory_mib", 0)),
        disk_gib=sum(math.ceil(float(d.get("size_gib", 0))) for d in doc.get("disks") or ()),
        nics=nics,
    )


def _read_app(src: _Files, name: str) -> Application:
    rel = f"applications/{name}/app.yaml"
    doc = _yaml(src, rel)
    containers = tuple(
        Container(
            name=str(c.get("name", "")),
            cpu=float(c.get("cpu", 0)),
            memory_mib=int(c.get("memory_mib", 0)),
            replicas=int(c.get("replicas", 1)),
        )
        for c in doc.get("containers") or ()
    )
    vm = doc.get("vm")
    return Application(
        name=name,
        priority=str(doc.get("priority", "standard")),
        orchestrator=str(doc.get("orchestrator", "")),
        vm_id=None if vm is None else str(vm),
        containers=containers,
        volumes=tuple(str(v.get("name")) for v in doc.get("volumes") or ()),
        depends_on=tuple(
            (str(d["app"]), str(d.get("strength", "hard"))) for d in doc.get("depends_on") or ()
        ),
    )


def _read_network(src: _Files) -> Network:
    subnets_doc = _map(_yaml(src, "network/subnets.yaml").get("subnets"), "network/subnets.yaml")
    subnets = tuple(
        Subnet(str(name), str(s["cidr"]), None if s.get("gateway") is None else str(s["gateway"]))
        for name, s in sorted(subnets_doc.items())
    )
    routes = tuple(
        Route(
            destination=str(r["destination"]),
            gateway=None if r.get("gateway") is None else str(r["gateway"]),
            subnet=str(r.get("subnet", "")),
            metric=int(r.get("metric", 0)),
        )
        for r in _optional(src, "network/routes.yaml").get("routes") or ()
    )
    policies = tuple(
        Policy(
            name=str(p.get("name", "")),
            action=str(p.get("action", "allow")),
            source=tuple(sorted((str(k), str(v)) for k, v in (p.get("from") or {}).items())),
            target=tuple(sorted((str(k), str(v)) for k, v in (p.get("to") or {}).items())),
            protocol=str(p.get("protocol", "any")),
            ports=tuple(int(x) for x in p.get("ports") or ()),
        )
        for p in _optional(src, "network/policies.yaml").get("policies") or ()
    )
    dns = _optional(src, "network/dns.yaml")
    records = tuple(
        DnsRecord(
            str(r["name"]),
            str(r.get("type", "A")),
            str(r["address"]),
            None if r.get("component") is None else str(r["component"]),
        )
        for r in dns.get("records") or ()
    )
    links = tuple(
        Link(
            str(x["from"]),
            str(x["to"]),
            tuple(int(p) for p in x.get("ports") or ()),
            str(x.get("protocol", "tcp")),
        )
        for x in _optional(src, "network/connectivity.yaml").get("links") or ()
    )
    return Network(
        subnets=subnets,
        routes=routes,
        policies=policies,
        dns_zone=str(dns.get("zone", "")),
        dns_servers=tuple(str(s) for s in dns.get("servers") or ()),
        records=records,
        links=links,
    )


def subnet_of(address: str | None, subnets: tuple[Subnet, ...]) -> str | None:
    """Name of the subnet holding `address`, or None."""
    if address is None:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return next((s.name for s in subnets if ip in ipaddress.ip_network(s.cidr, strict=False)), None)


def _yaml(src: _Files, rel: str) -> dict[str, Any]:
    try:
        data = load_yaml(src.text(rel))
    except yaml.YAMLError as exc:
        raise EnvironmentStateError(f"{rel}: not valid YAML: {exc}") from exc
    return _map(data, rel)


def _optional(src: _Files, rel: str) -> dict[str, Any]:
    return _yaml(src, rel) if src.exists(rel) else {}


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
