"""Reading the network documents: subnets, routes, policies, DNS and connectivity, in any of the
shapes docs/backup-format.md lists."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from transforms.documents.model import DnsRecord, Link, Network, Policy, Route, Subnet
from transforms.documents.sources import (
    MisreadFact,
    _document,
    _Files,
    _listed,
    _listing,
    _mappings,
    _num,
    _optional,
    _text,
    item_places,
    json_pointer,
)


def _read_network(src: _Files) -> Network:
    subnets = subnets_in(_document(src, "network/subnets.yaml"))
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


def subnets_in(doc: Any) -> tuple[Subnet, ...]:
    """{subnets: {name: {cidr, gateway}}} (ours), the same without `subnets:`, a list of {name, cidr,
    gateway}, or {name: cidr}; entries without a CIDR are not subnets. An entry with a CIDR but no name
    (a bare string in a list has none), or a CIDR without its /prefix length, is refused (MisreadFact
    at its place), never skipped."""
    wrapped = isinstance(doc, Mapping) and "subnets" in doc
    raw = doc["subnets"] if wrapped else doc
    if isinstance(raw, Mapping):
        items = [(str(k), v) for k, v in raw.items()]
    else:
        items = [(_text(s, "name") or "", s) if isinstance(s, Mapping) else ("", s) for s in _listed(raw)]
    found = []
    for (name, value), place in zip(items, item_places(raw), strict=True):
        try:
            found.append(_subnet(name, value))
        except MisreadFact as exc:
            raise exc.under(*(("subnets",) if wrapped else ()), *place) from None
    return tuple(sorted((s for s in found if s), key=lambda s: s.name))


CIDR_KEYS = ("cidr", "network", "prefix")


def _subnet(name: str, value: Any) -> Subnet | None:
    if isinstance(value, Mapping):
        cidr, gateway = _text(value, *CIDR_KEYS), _text(value, "gateway")
        field = (next(k for k in CIDR_KEYS if _text(value, k)),) if cidr else ()
    else:
        cidr, gateway, field = (str(value) if isinstance(value, str) else None), None, ()
    if cidr is None:
        return None  # nothing in it says which addresses: not a subnet
    if not name:
        raise MisreadFact("", f"the subnet {cidr} has no name (give it `name:`)")
    if "/" not in cidr:
        raise MisreadFact(
            json_pointer(*field), f"subnet {name}: {cidr!r} is not a CIDR: it has no /prefix length"
        )
    try:  # a malformed CIDR is refused here, naming the file, the subnet and the place
        ipaddress.ip_network(cidr, strict=False)
    except ValueError as exc:
        raise MisreadFact(json_pointer(*field), f"subnet {name}: {exc}") from exc
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
