"""Checking an inventory document field by field, every problem kept with the line of the YAML at
fault (read by yaml_text's line-aware loader, so an unquoted MAC keeps its text).

`InventoryChecker.document()` builds the `Inventory` and collects (line, message) problems rather
than stopping at the first: a bad CIDR or address, a gateway outside the management subnet,
duplicate node names, MACs or storage names, an unknown storage class, a non-positive capacity, a
missing or unknown field, roots that are not separate, an ssh:// root without a valid host_key.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from omni_recovery.adapt.inventory_model import (
    STORAGE_CLASSES,
    Inventory,
    InventoryDisk,
    InventoryNetwork,
    InventoryNic,
    InventoryNode,
    SshKeys,
    StoragePool,
)
from omni_recovery.urls import check_host_key, is_ssh_url, overlapping
from omni_recovery.yaml_text import LineList, LineMap

__all__ = ["SSH_FIELDS", "SUBNET_NAME", "InventoryChecker"]

SUBNET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
SSH_FIELDS = ("host_key", "identity_file")  # of a node or pool whose root is ssh:// or sftp://


class InventoryChecker:
    """The problems of one inventory document, each with its line, and the inventory it describes."""

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

    def queue_name(self, m: LineMap, what: str) -> str | None:
        """The optional worker_queue: a name as nodes have (a Celery queue; omni-<name> when absent)."""
        return self.name(m, "worker_queue", what) if "worker_queue" in m else None

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
        sections = ("nodes", "network", "storage")
        if not self.mapping(doc, 1, "the inventory", (*sections, "scanned_at"), sections):
            return None
        assert isinstance(doc, LineMap)
        nodes = self.nodes(doc.get("nodes"), doc.line_of("nodes"))
        network = self.network(doc.get("network"), doc.line_of("network"))
        storage = self.storage(doc.get("storage"), doc.line_of("storage"))
        self.separate_roots(nodes, storage)
        if network is None:
            return None
        scanned = doc.get("scanned_at")  # a time, as written, or as YAML read an unquoted one
        scanned_at = None if scanned is None else str(scanned)
        return Inventory(tuple(nodes), network, tuple(storage), scanned_at)

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
                ("name", "root", "cpu_cores", "memory_mib", "disks", "nics", "worker_queue", *SSH_FIELDS),
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
                queue = self.queue_name(item, where)
                at = (item.line, item.line_of("root"))
                result.append(InventoryNode(name, root, cores, memory, disks, nics, *at, ssh, queue))
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
                model, serial = (str(item.get(key) or "") for key in ("model", "serial"))
                result.append(InventoryDisk(device, size, model, serial))
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
        net = _network(value)
        if net is None:
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
                ("name", "class", "root", "capacity_gib", "worker_queue", *SSH_FIELDS),
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
                at = (item.line, item.line_of("root"))
                queue = self.queue_name(item, where)
                result.append(StoragePool(name, str(klass), root, capacity, *at, ssh, queue))
        return result


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _network(value: Any) -> ipaddress.IPv4Network | None:
    """`value` as an IPv4 CIDR, or None; one without its /prefix length is none (not a /32)."""
    if "/" not in str(value):
        return None
    try:
        return ipaddress.IPv4Network(str(value), strict=False)
    except ValueError:
        return None
