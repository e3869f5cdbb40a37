"""The facts of one document, found by meaning whatever shape its writer picked.

The reader builds its model from these and the catalog's configuration tables build their rows from
them, so both read a document alike: a list or a mapping keyed by name (`named_items`), a bare value
or an object, this project's field names or another writer's (the `*_KEYS` tuples, first found
wins). A fact a document does not give is None here; the model picks its default, the catalog
keeps the null. docs/backup-format.md lists the facts and shapes per document.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from transforms.documents.model import Subnet, VmNetwork
from transforms.documents.network import subnet_of
from transforms.documents.sources import MisreadFact, _ip_text, _listed, _text, first_of, json_pointer

VM_ID_KEYS = ("vm_id", "id")
CPU_KEYS = ("cpu", "vcpus", "cpus", "cpu_cores")
MEMORY_KEYS = ("memory_mib", "memory_mb", "ram_mib")
DISK_KEYS = ("disk_gib", "disk_size_gib")
ADDRESS_KEYS = ("ip", "address", "ipv4")
RESERVED_CPU_KEYS = ("cpu_cores", "cpu", "cpus")
RESERVED_MEMORY_KEYS = ("memory_mib", "memory_mb")
RING_PEER_KEYS = ("ring_peers", "peers")
VOLUME_SIZE_KEYS = ("size_gib", "capacity_gib")
MOUNT_KEYS = ("mount_path", "mount", "mountpoint", "path")


def named_items(value: Any, key: str = "name") -> list[dict[str, Any]]:
    """The objects of a list, or of a mapping keyed by name (the key becomes `key` unless the object
    sets it); a bare list item becomes {key: item}, a bare mapping value {key: name, "value": value}."""
    if isinstance(value, Mapping):
        return [
            {key: name, **item} if isinstance(item, Mapping) else {key: name, "value": item}
            for name, item in value.items()
        ]
    return [dict(item) if isinstance(item, Mapping) else {key: item} for item in _listed(value)]


def number(doc: Mapping[str, Any], *keys: str) -> float | None:
    """The first of `keys` that `doc` has, as a number (numeric text too); None when none is set.
    A value that is no number raises MisreadFact at the field: a size the plan needs is never
    guessed."""
    key = next((k for k in keys if doc.get(k) is not None), None)
    if key is None:
        return None
    value = doc[key]
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        return float(value)
    except (TypeError, ValueError):
        raise MisreadFact(json_pointer(key), f"{key} is {value!r}, not a number") from None


def addresses(cfg: Mapping[str, Any], subnets: tuple[Subnet, ...]) -> tuple[tuple[str, str], ...]:
    """A Director's (subnet name, address) pairs from its `addresses`: {subnet: address} (ours) or a
    list of addresses or {subnet|name, ip|address} items, named after the subnet holding them."""
    raw = first_of(cfg, "addresses", "listen_addresses")
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
        return _text(value, *ADDRESS_KEYS) or ""
    return "" if value is None else str(value)


def storage_paths(cfg: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """A Director's (name, path) pairs from its `storage_paths` (or `data_paths`): {name: path} (ours)
    or a list of paths or {name, path} items."""
    raw = first_of(cfg, "storage_paths", "data_paths")
    if isinstance(raw, Mapping):
        return tuple(sorted((str(k), str(v)) for k, v in raw.items()))
    pairs = []
    for item in _listed(raw):
        path = _text(item, "path") if isinstance(item, Mapping) else str(item)
        label = _text(item, "name") if isinstance(item, Mapping) else None
        if path:
            pairs.append((label or PurePosixPath(path).name or path, path))
    return tuple(sorted(pairs))


RESERVATION_KEYS = ("reservations", "reserved")


def reserved_of(cfg: Mapping[str, Any]) -> Mapping[str, Any]:
    """What a Director keeps for itself: its `reservations` (ours) or `reserved` mapping, else {}."""
    res = first_of(cfg, *RESERVATION_KEYS)
    return res if isinstance(res, Mapping) else {}


def reservations(cfg: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(CPU cores, memory MiB) a Director keeps for itself."""
    res = reserved_of(cfg)
    try:
        return number(res, *RESERVED_CPU_KEYS), number(res, *RESERVED_MEMORY_KEYS)
    except MisreadFact as exc:
        raise exc.under(field_of(cfg, RESERVATION_KEYS)) from None


def ring_peers(cfg: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(p) for p in _listed(first_of(cfg, *RING_PEER_KEYS)))


VM_LIST_KEYS = ("vms", "instances", "machines")


def vm_list_key(state: Mapping[str, Any]) -> str:
    """The field of a Director's state.json that holds its VMs (`vms` when none does)."""
    return next((key for key in VM_LIST_KEYS if key in state), VM_LIST_KEYS[0])


def vm_items(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The VMs of a Director's state.json: `vms` (or `instances`, `machines`) as a list or keyed by id."""
    return named_items(state.get(vm_list_key(state)), "vm_id")


def field_of(doc: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    """The first of `keys` that `doc` has (the first key when none): where a fact is to be written."""
    return next((key for key in keys if key in doc), keys[0])


def vm_networks(raw: Any, subnets: tuple[Subnet, ...]) -> tuple[VmNetwork, ...]:
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
        ip = _ip_text(_text(item, *ADDRESS_KEYS) if isinstance(item, Mapping) else item)
        if ip is not None:
            subnet = label if label in known else subnet_of(ip, subnets) or label or ""
            result.append(VmNetwork(subnet, ip))
    return tuple(result)


def vm_network_list(vm: Mapping[str, Any]) -> Any:
    return first_of(vm, "networks", "interfaces", "nics")


def nics(doc: Mapping[str, Any]) -> list[tuple[str, str, str | None]]:
    """(name, MAC, address) of each NIC of a node's document, a list or keyed by name."""
    found = []
    for nic in named_items(first_of(doc, "nics", "interfaces")):
        mac = _text(nic, "mac", "mac_address", "hwaddr") or ""
        found.append((_text(nic, "name", "device") or "", mac, _ip_text(first_of(nic, *ADDRESS_KEYS))))
    return found


def disks(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The disks of a node's document, a list or keyed by device."""
    return named_items(doc.get("disks"), "device")


def containers(app: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An application's containers, a list or keyed by name."""
    return named_items(app.get("containers"))


def volume_mounts(app: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """(name, mount path) of each volume an application names: {name, mount_path} items (the spec's),
    plain names, or a mapping of name to mount path or to {mount_path}."""
    found = []
    for item in named_items(app.get("volumes")):
        name = _text(item, "name")
        if name:
            found.append((name, _text(item, *MOUNT_KEYS, "value")))
    return found


def volume_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A volume.yaml's facts: app, name, size_gib, storage_class, mount_path, source_path (None when
    the document does not say)."""
    return {
        "app": _text(doc, "app", "application"),
        "name": _text(doc, "name"),
        "size_gib": first_of(doc, *VOLUME_SIZE_KEYS),
        "storage_class": _text(doc, "storage_class", "class"),
        "mount_path": _text(doc, "mount_path", "mount", "mountpoint"),
        "source_path": _text(doc, "source_path", "source"),
    }
