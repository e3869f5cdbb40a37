"""Network adaptation: old subnets onto the inventory's, every address re-allocated, references rewritten.

Pure functions. Each old subnet (management, services, storage) maps onto the inventory subnet of
the same name. Every address the environment uses inside an old subnet gets exactly one new address
inside the new subnet, never colliding with another, with the new network or broadcast address,
the inventory's gateway or its DNS servers. An address keeps its host offset when that offset is
free in the new subnet (so 10.0.8.25 becomes 10.20.8.25); otherwise it takes the lowest free
address. The old management gateway becomes the inventory's gateway; the other subnets' gateways
take their subnet's first free address. Addresses outside every old subnet (default routes, a VPN
range) are left alone.

Then routes, policies, DNS records and servers, and connectivity links are rewritten through the
address map, and every physical NIC of a mapped node takes its MAC from the inventory.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from omni_recovery.adapt.inventory import Inventory
from transforms.adapt.nodes import HardwareMapping
from transforms.adapt.vocabulary import Adaptation, AdaptationError
from transforms.documents import DnsRecord, Environment, Policy, Route

if TYPE_CHECKING:
    import polars as pl

ADDRESS_COLUMNS = ("subnet", "owner", "old", "new")  # strings


@dataclass(frozen=True)
class NicAssignment:
    """One old NIC of a mapped node and the inventory NIC that carries its address now."""

    old_node: str
    old_nic: str
    old_mac: str
    new_node: str
    new_nic: str
    new_mac: str
    address: str | None  # the NIC's new address


@dataclass(frozen=True)
class RewrittenLink:
    source: str
    target: str
    source_address: str | None
    target_address: str | None
    ports: tuple[int, ...]
    protocol: str


@dataclass(frozen=True)
class NetworkPlan:
    subnets: tuple[tuple[str, str, str], ...]  # (name, old cidr, new cidr)
    address_map: tuple[tuple[str, str], ...]  # (old, new), sorted
    addresses: pl.DataFrame  # ADDRESS_COLUMNS
    routes: tuple[Route, ...]
    policies: tuple[Policy, ...]
    dns_servers: tuple[str, ...]
    records: tuple[DnsRecord, ...]
    links: tuple[RewrittenLink, ...]
    nics: tuple[NicAssignment, ...]
    adaptations: tuple[Adaptation, ...]

    def new_address(self, old: str) -> str:
        return dict(self.address_map).get(old, old)


def _owned_addresses(env: Environment, hardware: HardwareMapping) -> list[tuple[str, str]]:
    """(address, owner) for every address the new environment keeps, first owner wins."""
    found: list[tuple[str, str]] = []
    mapped = {m.old_node for m in hardware.nodes if m.old_node and m.new_node}
    for subnet in env.network.subnets:
        if subnet.gateway:
            found.append((subnet.gateway, f"gateway of {subnet.name}"))
    for director in env.directors:
        for name, address in director.addresses:
            found.append((address, f"director:{director.director_id} ({name})"))
    for node in env.nodes:
        if node.name in mapped:
            found.extend((nic.ip, f"node {node.name} {nic.name}") for nic in node.nics if nic.ip)
    for vm in env.vms:
        found.extend((n.ip, f"{vm.owner} ({n.subnet})") for n in vm.networks)
    for orch in env.orchestrators:
        if orch.address:
            found.append((orch.address, f"orchestrator:{orch.orchestrator_id}"))
    for route in env.network.routes:
        if route.gateway:
            found.append((route.gateway, f"route gateway to {route.destination}"))
    found.extend((server, "DNS server") for server in env.network.dns_servers)
    found.extend((r.address, f"DNS {r.name}") for r in env.network.records if r.type in ("A", "AAAA"))
    return found


def _reserved(net: ipaddress.IPv4Network, inventory: Inventory) -> set[ipaddress.IPv4Address]:
    reserved = {net.network_address, net.broadcast_address} if net.prefixlen < 31 else set()
    for text in (inventory.network.gateway, *inventory.network.dns):
        ip = ipaddress.IPv4Address(text)
        if ip in net:
            reserved.add(ip)
    return reserved


def allocate(
    old_net: ipaddress.IPv4Network,
    new_net: ipaddress.IPv4Network,
    olds: list[ipaddress.IPv4Address],
    reserved: set[ipaddress.IPv4Address],
    fixed: dict[ipaddress.IPv4Address, ipaddress.IPv4Address],
) -> dict[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """Map each old address onto a distinct, unreserved address of `new_net` (offsets kept where free).
    `fixed` are mappings decided beforehand (gateways)."""
    used = set(reserved) | set(fixed.values())
    result = dict(fixed)
    pending = []
    for old in sorted(set(olds) - set(fixed)):
        offset = int(old) - int(old_net.network_address)
        if 0 <= offset < new_net.num_addresses:
            candidate = new_net.network_address + offset
            if candidate not in used:
                result[old] = candidate
                used.add(candidate)
                continue
        pending.append(old)
    free = (ip for ip in _hosts(new_net) if ip not in used)
    for old in pending:
        result[old] = next(free)
    return result


def _hosts(net: ipaddress.IPv4Network) -> Iterator[ipaddress.IPv4Address]:
    """The usable addresses of `net`, lazily (a /8 is never listed)."""
    return net.hosts() if net.prefixlen < 31 else iter(net)


def _edges(net: ipaddress.IPv4Network) -> set[ipaddress.IPv4Address]:
    return {net.network_address, net.broadcast_address} if net.prefixlen < 31 else set()


def _host_count(net: ipaddress.IPv4Network) -> int:
    return net.num_addresses - 2 if net.prefixlen < 31 else net.num_addresses


def adapt_network(env: Environment, inventory: Inventory, hardware: HardwareMapping) -> NetworkPlan:
    """Re-address the environment onto the inventory's subnets; raise AdaptationError when a subnet is
    missing or too small (saying how many addresses it lacks)."""
    owned = _owned_addresses(env, hardware)
    owners: dict[str, str] = {}
    for address, owner in owned:
        owners.setdefault(address, owner)
    address_map: dict[str, str] = {}
    subnets: list[tuple[str, str, str]] = []
    adaptations: list[Adaptation] = []
    rows = []
    for subnet in env.network.subnets:
        old_net = ipaddress.IPv4Network(subnet.cidr, strict=False)
        new_text = inventory.network.subnet(subnet.name)
        if new_text is None:
            raise AdaptationError(
                f"old subnet {subnet.name} ({subnet.cidr}) has no counterpart in the "
                f"inventory's network.subnets (known: {', '.join(dict(inventory.network.subnets))})"
            )
        new_net = ipaddress.IPv4Network(new_text)
        subnets.append((subnet.name, str(old_net), str(new_net)))
        adaptations.append(
            Adaptation(
                "subnet", f"subnet {subnet.name}", str(old_net), str(new_net), "the inventory's subnet"
            )
        )
        olds = sorted({ipaddress.IPv4Address(a) for a in owners if _within(a, old_net)})
        reserved = _reserved(new_net, inventory)
        fixed = _gateway(subnet.name, subnet.gateway, new_net, inventory, reserved)
        free = _host_count(new_net) - len({ip for ip in reserved if ip in new_net} - _edges(new_net))
        if len(olds) > free:
            raise AdaptationError(
                f"subnet {subnet.name} needs {len(olds)} addresses; the inventory's {new_net} "
                f"has {free} usable (short by {len(olds) - free})"
            )
        for old, new in sorted(allocate(old_net, new_net, olds, reserved, fixed).items()):
            address_map[str(old)] = str(new)
            rows.append({"subnet": subnet.name, "owner": owners[str(old)], "old": str(old), "new": str(new)})
            adaptations.append(
                Adaptation("address", owners[str(old)], str(old), str(new), f"re-addressed into {new_net}")
            )
    import polars as pl  # here: plan steps use this module's address map, which needs no polars

    addresses = pl.DataFrame(rows, schema=dict.fromkeys(ADDRESS_COLUMNS, pl.String))
    routes, route_changes = _routes(env, address_map, subnets)
    policies, policy_changes = _policies(env, subnets)
    records = tuple(
        DnsRecord(r.name, r.type, address_map.get(r.address, r.address), r.component)
        for r in env.network.records
    )
    dns_changes = [
        Adaptation("dns", f"DNS {r.name}", r.address, n.address, "points at the new address")
        for r, n in zip(env.network.records, records, strict=True)
        if r.address != n.address
    ]
    links = _links(env, address_map)
    link_changes = _link_changes(env, links)
    nics, nic_changes = _nics(env, inventory, hardware, address_map)
    return NetworkPlan(
        subnets=tuple(subnets),
        address_map=tuple(sorted(address_map.items())),
        addresses=addresses,
        routes=routes,
        policies=policies,
        dns_servers=tuple(address_map.get(s, s) for s in env.network.dns_servers),
        records=records,
        links=links,
        nics=nics,
        adaptations=tuple(
            adaptations + route_changes + policy_changes + dns_changes + link_changes + nic_changes
        ),
    )


def _within(address: str, net: ipaddress.IPv4Network) -> bool:
    try:
        return ipaddress.IPv4Address(address) in net
    except ValueError:
        return False


def _gateway(
    name: str,
    gateway: str | None,
    new_net: ipaddress.IPv4Network,
    inventory: Inventory,
    reserved: set[ipaddress.IPv4Address],
) -> dict[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """The old gateway's new address: the inventory's gateway for management, else the first free host."""
    if not gateway:
        return {}
    old = ipaddress.IPv4Address(gateway)
    new_gateway = ipaddress.IPv4Address(inventory.network.gateway)
    if name == "management" and new_gateway in new_net:
        reserved.discard(new_gateway)
        return {old: new_gateway}
    first = next((ip for ip in _hosts(new_net) if ip not in reserved), None)
    return {old: first} if first is not None else {}


def _routes(
    env: Environment, address_map: dict[str, str], subnets: list[tuple[str, str, str]]
) -> tuple[tuple[Route, ...], list[Adaptation]]:
    cidrs = {old: new for _, old, new in subnets}
    routes, changes = [], []
    for r in env.network.routes:
        destination = cidrs.get(_normal_cidr(r.destination), r.destination)
        gateway = address_map.get(r.gateway, r.gateway) if r.gateway else r.gateway
        new = Route(destination, gateway, r.subnet, r.metric)
        routes.append(new)
        if new != r:
            changes.append(
                Adaptation(
                    "route",
                    f"route to {r.destination} via {r.subnet}",
                    f"{r.destination} via {r.gateway}",
                    f"{destination} via {gateway}",
                    "destination and gateway moved with their subnets",
                )
            )
    return tuple(routes), changes


def _normal_cidr(text: str) -> str:
    try:
        return str(ipaddress.IPv4Network(text, strict=False))
    except ValueError:
        return text


def _policies(
    env: Environment, subnets: list[tuple[str, str, str]]
) -> tuple[tuple[Policy, ...], list[Adaptation]]:
    """Policies name subnets, services and applications; they keep their names, and every subnet named
    now stands for its new range (recorded old → new)."""
    cidrs = {name: (old, new) for name, old, new in subnets}
    changes = []
    for p in env.network.policies:
        refs = [value for key, value in (*p.source, *p.target) if key == "subnet" and value in cidrs]
        if refs:
            changes.append(
                Adaptation(
                    "policy",
                    f"policy {p.name}",
                    ", ".join(f"{ref} = {cidrs[ref][0]}" for ref in refs),
                    ", ".join(f"{ref} = {cidrs[ref][1]}" for ref in refs),
                    "the subnets it names were re-addressed",
                )
            )
    return env.network.policies, changes


def component_addresses(env: Environment) -> dict[str, str]:
    """The old primary address of every addressable component."""
    found: dict[str, str] = {}
    for director in env.directors:
        addresses = dict(director.addresses)
        address = addresses.get("management") or next(iter(addresses.values()), None)
        if address:
            found[f"director:{director.director_id}"] = address
    for vm in env.vms:
        if vm.networks:
            found.setdefault(vm.owner, vm.networks[0].ip)
    for orch in env.orchestrators:
        if orch.address:
            found[f"orchestrator:{orch.orchestrator_id}"] = orch.address
    return found


def _links(env: Environment, address_map: dict[str, str]) -> tuple[RewrittenLink, ...]:
    addresses = {c: address_map.get(a, a) for c, a in component_addresses(env).items()}
    return tuple(
        RewrittenLink(
            link.source,
            link.target,
            addresses.get(link.source),
            addresses.get(link.target),
            link.ports,
            link.protocol,
        )
        for link in env.network.links
    )


def _describe_links(source: str, links: list[RewrittenLink], address_of: dict[str, str | None]) -> str:
    parts = [
        f"{link.target} {address_of.get(link.target) or '?'}:{','.join(map(str, link.ports)) or '*'}"
        for link in links
    ]
    return f"{address_of.get(source) or '?'} -> " + "; ".join(parts)


def _link_changes(env: Environment, links: tuple[RewrittenLink, ...]) -> list[Adaptation]:
    """One `link` adaptation per source component: its connectivity with old and new endpoint addresses."""
    old: dict[str, str | None] = dict(component_addresses(env))
    changes = []
    for source in sorted({link.source for link in links}):
        mine = [link for link in links if link.source == source]
        new: dict[str, str | None] = {}
        for link in mine:
            new[link.source] = link.source_address
            new[link.target] = link.target_address
        before, after = _describe_links(source, mine, old), _describe_links(source, mine, new)
        if before != after:
            changes.append(
                Adaptation("link", f"links from {source}", before, after, "endpoints re-addressed")
            )
    return changes


def _nics(
    env: Environment, inventory: Inventory, hardware: HardwareMapping, address_map: dict[str, str]
) -> tuple[tuple[NicAssignment, ...], list[Adaptation]]:
    """Old node NICs onto the new node's NICs in order (extra addresses carried by the last NIC)."""
    result, changes = [], []
    for mapping in hardware.nodes:
        if not mapping.old_node or not mapping.new_node:
            continue
        old_node = next((n for n in env.nodes if n.name == mapping.old_node), None)
        if old_node is None:
            continue
        new_nics = inventory.node(mapping.new_node).nics
        if not new_nics:
            continue
        for i, nic in enumerate(old_node.nics):
            new = new_nics[min(i, len(new_nics) - 1)]
            address = address_map.get(nic.ip, nic.ip) if nic.ip else None
            result.append(
                NicAssignment(old_node.name, nic.name, nic.mac, mapping.new_node, new.name, new.mac, address)
            )
            shared = " (shared: the new node has fewer NICs)" if i >= len(new_nics) else ""
            changes.append(
                Adaptation(
                    "mac",
                    f"node {old_node.name} {nic.name}"
                    + (f" (Director {mapping.director})" if mapping.director else ""),
                    f"{nic.name} {nic.mac}" + (f" {nic.ip}" if nic.ip else ""),
                    f"{mapping.new_node} {new.name} {new.mac}" + (f" {address}" if address else "") + shared,
                    "MAC address from the inventory",
                )
            )
    return tuple(result), changes
