"""The target inventory's model: the nodes, network and storage pools a backup set is restored onto,
as `adapt.inventory` reads them from `inventory.yaml`, and back to YAML.

`make_inventory()` builds a valid inventory from a few numbers, for examples and tests.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import yaml

__all__ = [
    "STORAGE_CLASSES",
    "SUBNET_ROLES",
    "Inventory",
    "InventoryDisk",
    "InventoryNetwork",
    "InventoryNic",
    "InventoryNode",
    "SshKeys",
    "StoragePool",
    "inventory_to_yaml",
    "make_inventory",
]

STORAGE_CLASSES = ("hdd", "nvme", "ssd")
SUBNET_ROLES = ("management", "services", "storage")  # the demo's subnets; a set may have others


@dataclass(frozen=True)
class InventoryNic:
    name: str
    mac: str  # lower case, colon separated


@dataclass(frozen=True)
class InventoryDisk:
    device: str
    size_gib: int
    model: str = ""  # as /sys tells it, where it does
    serial: str = ""


@dataclass(frozen=True)
class SshKeys:
    """For a root on another machine: its pinned host key, and the key to log in with (else the agent)."""

    host_key: str
    identity_file: str | None = None


@dataclass(frozen=True)
class InventoryNode:
    name: str
    root: str
    cpu_cores: int
    memory_mib: int
    disks: tuple[InventoryDisk, ...]
    nics: tuple[InventoryNic, ...]
    line: int = field(default=0, compare=False)
    root_line: int = field(default=0, compare=False)
    ssh: SshKeys | None = None
    worker_queue: str | None = None  # the restore workers' queue for its steps (default omni-<name>)

    @property
    def queue(self) -> str:
        return self.worker_queue or f"omni-{self.name}"

    @property
    def disk_gib(self) -> int:
        return sum(d.size_gib for d in self.disks)


@dataclass(frozen=True)
class StoragePool:
    name: str
    storage_class: str
    root: str
    capacity_gib: int
    line: int = field(default=0, compare=False)
    root_line: int = field(default=0, compare=False)
    ssh: SshKeys | None = None
    worker_queue: str | None = None  # the restore workers' queue for its volumes (default omni-<name>)

    @property
    def queue(self) -> str:
        return self.worker_queue or f"omni-{self.name}"


@dataclass(frozen=True)
class InventoryNetwork:
    subnets: tuple[tuple[str, str], ...]  # (old subnet's name, new cidr)
    gateway: str
    dns: tuple[str, ...]

    def subnet(self, role: str) -> str | None:
        return dict(self.subnets).get(role)


@dataclass(frozen=True)
class Inventory:
    nodes: tuple[InventoryNode, ...]
    network: InventoryNetwork
    storage: tuple[StoragePool, ...]
    scanned_at: str | None = None  # when inventory-scan wrote it: its nodes' figures are their machines'

    def node(self, name: str) -> InventoryNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


def _ssh_fields(keys: SshKeys | None) -> dict[str, str]:
    if keys is None:
        return {}
    fields = {"host_key": keys.host_key}
    if keys.identity_file:
        fields["identity_file"] = keys.identity_file
    return fields


def _disk_fields(disk: InventoryDisk) -> dict[str, str | int]:
    fields: dict[str, str | int] = {"device": disk.device, "size_gib": disk.size_gib}
    fields.update({key: value for key, value in (("model", disk.model), ("serial", disk.serial)) if value})
    return fields


def inventory_to_yaml(inventory: Inventory) -> str:
    """The inventory as YAML (the shape `parse_inventory` reads); handy for tests and examples."""
    scanned = {"scanned_at": inventory.scanned_at} if inventory.scanned_at else {}
    doc = {
        **scanned,
        "nodes": [
            {
                "name": n.name,
                "root": n.root,
                "cpu_cores": n.cpu_cores,
                "memory_mib": n.memory_mib,
                "disks": [_disk_fields(d) for d in n.disks],
                "nics": [{"name": c.name, "mac": c.mac} for c in n.nics],
                **_ssh_fields(n.ssh),
                **({"worker_queue": n.worker_queue} if n.worker_queue else {}),
            }
            for n in inventory.nodes
        ],
        "network": {
            "subnets": dict(inventory.network.subnets),
            "gateway": inventory.network.gateway,
            "dns": list(inventory.network.dns),
        },
        "storage": [
            {
                "name": s.name,
                "class": s.storage_class,
                "root": s.root,
                "capacity_gib": s.capacity_gib,
                **_ssh_fields(s.ssh),
                **({"worker_queue": s.worker_queue} if s.worker_queue else {}),
            }
            for s in inventory.storage
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def make_inventory(
    nodes: list[tuple[str, int, int, int]],
    *,
    root: str = "file:///srv/omni",
    subnets: tuple[str, str, str] = ("10.20.0.0/24", "10.20.8.0/22", "10.20.16.0/24"),
    storage: list[tuple[str, str, int]] | None = None,
    mac_prefix: str = "52:54:00",
) -> Inventory:
    """A valid inventory from (name, cpu_cores, memory_mib, disk_gib) per node: one disk and two NICs each,
    the given subnets (gateway: first address of the management subnet, DNS: .53 of it) and storage pools
    (name, class, capacity_gib), default one ssd and one hdd pool of 4000 GiB. For examples and tests."""
    management = ipaddress.IPv4Network(subnets[0])
    built = tuple(
        InventoryNode(
            name=name,
            root=f"{root}/targets/{name}",
            cpu_cores=cores,
            memory_mib=memory,
            disks=(InventoryDisk("nvme0n1", disk),),
            nics=(
                InventoryNic("eth0", f"{mac_prefix}:{i // 256:02x}:{i % 256:02x}:01"),
                InventoryNic("eth1", f"{mac_prefix}:{i // 256:02x}:{i % 256:02x}:02"),
            ),
        )
        for i, (name, cores, memory, disk) in enumerate(nodes)
    )
    pools = storage if storage is not None else [("fast", "ssd", 4000), ("bulk", "hdd", 4000)]
    return Inventory(
        nodes=built,
        network=InventoryNetwork(
            subnets=tuple(zip(SUBNET_ROLES, subnets, strict=True)),
            gateway=str(management.network_address + 1),
            dns=(str(management.network_address + 53),) if management.num_addresses > 64 else (),
        ),
        storage=tuple(StoragePool(n, c, f"{root}/storage/{n}", cap) for n, c, cap in pools),
    )
