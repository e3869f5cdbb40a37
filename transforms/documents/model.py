"""The old environment as the adaptation needs it: a typed, frozen model (plain data, never changed).

Nodes with their NICs, Directors, VMs with their networks, Orchestrators, services, applications with
their containers, volumes and the network (subnets, routes, policies, DNS records, links), with the
recovery index's components and dependencies. `transforms.documents.reader` builds it from texts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from omni_recovery.backupset.index_db import Component, Dependency

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
