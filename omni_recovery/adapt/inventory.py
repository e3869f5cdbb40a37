"""The target inventory (`inventory.yaml`): the new infrastructure a backup set is restored onto.

`parse_inventory(text)` reads and validates it (shape in docs/backup-format.md, "The target
inventory"). Every problem found is reported at once in one InventoryError, each naming the line
of the YAML at fault and what is wrong: a bad CIDR or address, a gateway outside the management
subnet, duplicate node names, MACs or storage names, an unknown storage class, a non-positive
capacity, a missing or unknown field, an ssh:// root without a valid host_key.

It is read with yaml_text's line-aware loader, so each problem names its line and an unquoted
MAC keeps its text.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from omni_recovery.adapt.root_safety import inventory_root_problems
from omni_recovery.errors import RecoveryError
from omni_recovery.urls import check_host_key, is_ssh_url, overlapping
from omni_recovery.yaml_text import LineList, LineMap, load_yaml_with_lines, yaml_error_line

STORAGE_CLASSES = ("hdd", "nvme", "ssd")
SUBNET_ROLES = ("management", "services", "storage")  # the demo's subnets; a set may have others
SUBNET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
SSH_FIELDS = ("host_key", "identity_file")  # of a node or pool whose root is ssh:// or sftp://


class InventoryError(RecoveryError):
    """The inventory is malformed; `problems` lists (line, message), line 0 when unknown."""

    def __init__(self, source: str, problems: list[tuple[int, str]]) -> None:
        self.source = source
        self.problems = sorted(problems)
        lines = [f"{source}:{line}: {msg}" if line else f"{source}: {msg}" for line, msg in self.problems]
        super().__init__("the target inventory is not valid:\n  " + "\n  ".join(lines))


# -- the model -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InventoryNic:
    name: str
    mac: str  # lower case, colon separated


@dataclass(frozen=True)
class InventoryDisk:
    device: str
    size_gib: int


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

    def node(self, name: str) -> InventoryNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


def load_inventory(path: Path, *, allow_system_root: bool = False) -> Inventory:
    """Read and validate the inventory file at `path`, its roots checked on this machine (root_safety:
    no two the same folder through a symbolic link, no system folder unless `allow_system_root`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(str(path), [(0, f"cannot be read: {exc}")]) from exc
    inventory = parse_inventory(text, source=str(path))
    problems = inventory_root_problems(inventory, allow_system_root=allow_system_root)
    if problems:
        raise InventoryError(str(path), problems)
    return inventory


def parse_inventory(text: str, source: str = "inventory.yaml") -> Inventory:
    """Parse and validate inventory YAML; raise InventoryError listing every problem with its line."""
    try:
        doc = load_yaml_with_lines(text)
    except yaml.YAMLError as exc:
        raise InventoryError(source, [(yaml_error_line(exc), f"not valid YAML: {exc}")]) from exc
    check = _Checker()
    inventory = check.document(doc)
    if check.problems or inventory is None:
        raise InventoryError(source, check.problems or [(0, "empty inventory")])
    return inventory


class _Checker:
    def __init__(self) -> None:
        self.problems: list[tuple[int, str]] = []

    def fail(self, line: int, message: str) -> None:
        self.problems.append((line, message))

    # -- generic ------------------------------------------------------------------------------

    def mapping(
        self, value: Any, line: int, what: str, known: tuple[str, ...], required: tuple[str, ...]
    ) -> bool:
        if not isinstance(value, LineMap):
            self.fail(line, f"{what} must be a mapping, found {_kind(value)}")
            return False
        for key in value:
            if key not in known:
                self.fail(value.line_of(key), f"{what}: unknown field {key!r} (known: {', '.join(known)})")
        for key in required:
            if key not in value:
                self.fail(value.line, f"{what}: missing field {key!r}")
        return True

    def sequence(self, value: Any, line: int, what: str, *, allow_empty: bool = False) -> LineList | None:
        if not isinstance(value, LineList):
            self.fail(line, f"{what} must be a list, found {_kind(value)}")
            return None
        if not value and not allow_empty:
            self.fail(line, f"{what} must not be empty")
        return value

    def text(self, m: LineMap, key: str, what: str) -> str | None:
        if key not in m:
            return None
        value = m.get(key)
        if not isinstance(value, str) or not value.strip():
            self.fail(m.line_of(key), f"{what}: {key} must be non-empty text, found {value!r}")
            return None
        return value

    def name(self, m: LineMap, key: str, what: str) -> str | None:
        value = self.text(m, key, what)
        if value is not None and not _NAME.match(value):
            self.fail(
                m.line_of(key),
                f"{what}: {key} {value!r} must be letters, digits, '.', '_' or '-' (at most 63, no '/')",
            )
            return None
        return value

    def unique_name(self, m: LineMap, what: str, kind: str, names: dict[str, int]) -> str | None:
        """`m`'s name, checked as `name` does, and reported when one before it (in `names`, with its
        line) already has it."""
        name = self.name(m, "name", what)
        if name is not None:
            if name in names:
                self.fail(m.line_of("name"), f"duplicate {kind} name {name!r} (first at line {names[name]})")
            names.setdefault(name, m.line_of("name"))
        return name

    def positive(self, m: LineMap, key: str, what: str) -> int | None:
        if key not in m:
            return None
        value = m.get(key)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(m.line_of(key), f"{what}: {key} must be a whole number, found {value!r}")
            return None
        if value <= 0:
            self.fail(m.line_of(key), f"{what}: {key} must be positive, found {value}")
            return None
        return value

    def root(self, m: LineMap, key: str, what: str) -> str | None:
        value = self.text(m, key, what)
        if value is None:
            return None
        if "://" not in value and not value.startswith("/"):
            self.fail(
                m.line_of(key),
                f"{what}: {key} {value!r} must be an fsspec URL (file:///srv/omni/x) or an absolute path",
            )
            return None
        return value.rstrip("/") or "/"

    def ssh_keys(self, m: LineMap, root: str, what: str) -> SshKeys | None:
        """The host_key (required) and identity_file of an ssh:// or sftp:// root; neither on another."""
        host_key = self.text(m, "host_key", what)
        identity = self.text(m, "identity_file", what)
        if not is_ssh_url(root):
            for key in SSH_FIELDS:
                if key in m:
                    self.fail(m.line_of(key), f"{what}: {key} is for ssh:// roots only")
            return None
        if host_key is None:
            self.fail(
                m.line_of("root"),
                f"{what}: an ssh:// root needs host_key (its public host key as in known_hosts)",
            )
            return None
        problem = check_host_key(host_key)
        if problem is not None:
            self.fail(m.line_of("host_key"), f"{what}: host_key is not a public key line: {problem}")
            return None
        return SshKeys(host_key, identity)

    # -- sections -----------------------------------------------------------------------------

    def document(self, doc: Any) -> Inventory | None:
        if not self.mapping(
            doc, 1, "the inventory", ("nodes", "network", "storage"), ("nodes", "network", "storage")
        ):
            return None
        assert isinstance(doc, LineMap)
        nodes = self.nodes(doc.get("nodes"), doc.line_of("nodes"))
        network = self.network(doc.get("network"), doc.line_of("network"))
        storage = self.storage(doc.get("storage"), doc.line_of("storage"))
        self.separate_roots(nodes, storage)
        if network is None:
            return None
        return Inventory(nodes=tuple(nodes), network=network, storage=tuple(storage))

    def separate_roots(self, nodes: list[InventoryNode], storage: list[StoragePool]) -> None:
        """Each node and storage pool gets a root of its own: none is another's or inside another's."""
        roots = [(n.root, (n.line, f"node {n.name}", n.root)) for n in nodes]
        roots += [(s.root, (s.line, f"storage {s.name}", s.root)) for s in storage]
        for (line, name, root), (_, outer, _), same in overlapping(roots):
            where = "is also" if same else "lies inside"
            self.fail(line, f"{name}: root {root} {where} the root of {outer}; each needs its own")

    def nodes(self, value: Any, line: int) -> list[InventoryNode]:
        items = self.sequence(value, line, "nodes")
        result: list[InventoryNode] = []
        names: dict[str, int] = {}
        macs: dict[str, tuple[str, int]] = {}
        for i, item in enumerate(items or ()):
            where = f"node #{i + 1}"
            if not self.mapping(
                item,
                items.line_of(i) if items else line,
                where,
                ("name", "root", "cpu_cores", "memory_mib", "disks", "nics", *SSH_FIELDS),
                ("name", "root", "cpu_cores", "memory_mib", "disks", "nics"),
            ):
                continue
            name = self.unique_name(item, where, "node", names)
            if name is not None:
                where = f"node {name}"
            root = self.root(item, "root", where)
            cores = self.positive(item, "cpu_cores", where)
            memory = self.positive(item, "memory_mib", where)
            disks = self.disks(item.get("disks"), item.line_of("disks"), where) if "disks" in item else ()
            nics = (
                self.nics(item.get("nics"), item.line_of("nics"), where, macs, name or where)
                if "nics" in item
                else ()
            )
            if None not in (name, root, cores, memory):
                assert name is not None and root is not None and cores is not None and memory is not None
                ssh = self.ssh_keys(item, root, where)
                result.append(
                    InventoryNode(
                        name, root, cores, memory, disks, nics, item.line, item.line_of("root"), ssh
                    )
                )
        return result

    def disks(self, value: Any, line: int, where: str) -> tuple[InventoryDisk, ...]:
        items = self.sequence(value, line, f"{where}: disks")
        result = []
        for i, item in enumerate(items or ()):
            what = f"{where}: disk #{i + 1}"
            if not self.mapping(
                item, line, what, ("device", "size_gib", "model", "serial"), ("device", "size_gib")
            ):
                continue
            device = self.text(item, "device", what)
            size = self.positive(item, "size_gib", what)
            if device is not None and size is not None:
                result.append(InventoryDisk(device, size))
        return tuple(result)

    def nics(
        self, value: Any, line: int, where: str, macs: dict[str, tuple[str, int]], owner: str
    ) -> tuple[InventoryNic, ...]:
        items = self.sequence(value, line, f"{where}: nics")
        result = []
        seen: set[str] = set()
        for i, item in enumerate(items or ()):
            what = f"{where}: nic #{i + 1}"
            if not self.mapping(item, line, what, ("name", "mac"), ("name", "mac")):
                continue
            name = self.text(item, "name", what)
            if name is not None and name in seen:
                self.fail(item.line_of("name"), f"{where}: duplicate NIC name {name!r}")
            seen.add(name or "")
            if "mac" not in item:
                continue
            raw = item.raw.get("mac", item.get("mac"))
            mac = str(raw).strip().lower().replace("-", ":") if raw is not None else ""
            mline = item.line_of("mac")
            if not _MAC.match(mac):
                self.fail(mline, f'{what}: mac {raw!r} is not a MAC address like "52:54:00:12:34:56"')
                continue
            first = int(mac[:2], 16)
            if first & 1 or mac == "00:00:00:00:00:00":
                self.fail(mline, f"{what}: mac {mac} is a multicast, broadcast or zero address")
                continue
            if mac in macs:
                other, other_line = macs[mac]
                self.fail(mline, f"{what}: duplicate MAC {mac} (also on {other}, line {other_line})")
                continue
            macs[mac] = (owner, mline)
            if name is not None:
                result.append(InventoryNic(name, mac))
        return tuple(result)

    def network(self, value: Any, line: int) -> InventoryNetwork | None:
        if not self.mapping(value, line, "network", ("subnets", "gateway", "dns"), ("subnets", "gateway")):
            return None
        assert isinstance(value, LineMap)
        subnets_doc = value.get("subnets")
        sline = value.line_of("subnets")
        nets = self.subnets(subnets_doc, sline)
        gateway = self.address(value, "gateway", "network") if "gateway" in value else None
        management = nets.get("management")
        if gateway is not None and management is not None:
            if gateway not in management:
                self.fail(
                    value.line_of("gateway"),
                    f"network: gateway {gateway} is outside the management subnet {management}",
                )
            elif gateway in (management.network_address, management.broadcast_address):
                self.fail(
                    value.line_of("gateway"),
                    f"network: gateway {gateway} is the network or broadcast address of {management}",
                )
        dns: list[str] = []
        if "dns" in value:
            items = self.sequence(value["dns"], value.line_of("dns"), "network.dns", allow_empty=True)
            for i, item in enumerate(items or ()):
                try:
                    dns.append(str(ipaddress.IPv4Address(str(item))))
                except ValueError:
                    self.fail(
                        items.line_of(i) if items else line, f"network.dns: {item!r} is not an IPv4 address"
                    )
        if gateway is None or not nets or self.problems:
            return None
        return InventoryNetwork(
            subnets=tuple((name, str(net)) for name, net in nets.items()),
            gateway=str(gateway),
            dns=tuple(dns),
        )

    def subnets(self, doc: Any, line: int) -> dict[str, ipaddress.IPv4Network]:
        """network.subnets: one new range per old subnet, by the old subnet's name (any names)."""
        nets: dict[str, ipaddress.IPv4Network] = {}
        if doc is None:
            return nets  # reported as a missing field
        if not isinstance(doc, LineMap):
            self.fail(line, f"network.subnets must be a mapping of subnet name to CIDR, found {_kind(doc)}")
            return nets
        if "management" not in doc:  # the gateway's subnet; the others are named after the set's
            self.fail(doc.line, "network.subnets: missing field 'management'")
        for name in doc:
            if not isinstance(name, str) or not SUBNET_NAME.fullmatch(name):
                self.fail(doc.line_of(name), f"network.subnets: {name!r} is not a subnet name like services")
                continue
            net = self.cidr(doc, name)
            if net is not None:
                nets[name] = net
        names = list(nets)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if nets[a].overlaps(nets[b]):
                    self.fail(doc.line_of(b), f"network.subnets: {b} {nets[b]} overlaps {a} {nets[a]}")
        return nets

    def cidr(self, m: LineMap, key: str) -> ipaddress.IPv4Network | None:
        value = m.get(key)
        try:
            net = ipaddress.IPv4Network(str(value), strict=False)
        except ValueError:
            self.fail(
                m.line_of(key), f"network.subnets: {key} {value!r} is not an IPv4 CIDR like 10.20.0.0/24"
            )
            return None
        if str(net) != str(value):
            self.fail(
                m.line_of(key), f"network.subnets: {key} {value!r} has host bits set; did you mean {net}?"
            )
            return None
        if net.num_addresses < 4:
            self.fail(m.line_of(key), f"network.subnets: {key} {net} is too small (at least a /30)")
            return None
        return net

    def address(self, m: LineMap, key: str, what: str) -> ipaddress.IPv4Address | None:
        value = m.get(key)
        try:
            return ipaddress.IPv4Address(str(value))
        except ValueError:
            self.fail(m.line_of(key), f"{what}: {key} {value!r} is not an IPv4 address")
            return None

    def storage(self, value: Any, line: int) -> list[StoragePool]:
        items = self.sequence(value, line, "storage")
        result = []
        names: dict[str, int] = {}
        for i, item in enumerate(items or ()):
            where = f"storage #{i + 1}"
            if not self.mapping(
                item,
                items.line_of(i) if items else line,
                where,
                ("name", "class", "root", "capacity_gib", *SSH_FIELDS),
                ("name", "class", "root", "capacity_gib"),
            ):
                continue
            name = self.unique_name(item, where, "storage", names)
            if name is not None:
                where = f"storage {name}"
            klass = item.get("class")
            if "class" in item and klass not in STORAGE_CLASSES:
                self.fail(
                    item.line_of("class"),
                    f"{where}: unknown storage class {klass!r} (known: {', '.join(STORAGE_CLASSES)})",
                )
                klass = None
            root = self.root(item, "root", where)
            capacity = self.positive(item, "capacity_gib", where)
            if name is not None and klass is not None and root is not None and capacity is not None:
                ssh = self.ssh_keys(item, root, where)
                result.append(
                    StoragePool(name, str(klass), root, capacity, item.line, item.line_of("root"), ssh)
                )
        return result


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _ssh_fields(keys: SshKeys | None) -> dict[str, str]:
    if keys is None:
        return {}
    fields = {"host_key": keys.host_key}
    if keys.identity_file:
        fields["identity_file"] = keys.identity_file
    return fields


def inventory_to_yaml(inventory: Inventory) -> str:
    """The inventory as YAML (the shape `parse_inventory` reads); handy for tests and examples."""
    doc = {
        "nodes": [
            {
                "name": n.name,
                "root": n.root,
                "cpu_cores": n.cpu_cores,
                "memory_mib": n.memory_mib,
                "disks": [{"device": d.device, "size_gib": d.size_gib} for d in n.disks],
                "nics": [{"name": c.name, "mac": c.mac} for c in n.nics],
                **_ssh_fields(n.ssh),
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
