"""Adaptation by value: the plan's mappings applied to every string of a document, at any depth.

`ValueMap` holds what moves: old subnet → new subnet, old address → new address, old storage path →
new path, old MAC → new MAC, old node name → new node. `ValueAdapter.document(rel, data)` walks a
parsed YAML/JSON document and rewrites each string wherever a mapped value appears, under any key and
inside larger strings (`10.0.0.11:7400`, a URL, a connection string): an IPv4 address (with or without
a /prefix) inside an old subnet, an old storage path or a path below it, an old MAC (either case,
`:` or `-`, written back in the spelling found); a whole string
equal to an old node name. Every change is a `DocumentChange` (document, JSON pointer, old and new
text, the adaptation that explains it); everything else is kept.

One old address always maps to one new address: the plan's, else (a DNS record, a peer, an address the
environment model does not name) the same host part in the new subnet, or the lowest free one when that
collides with an address already given out or lies outside the new subnet. Storage paths are scoped:
a Director's documents use that Director's paths (several Directors may use the same old path);
elsewhere such an ambiguous old path is left and each place holding it is a warning in `left`.

What can go wrong: a new subnet with no free address left for a stray old one raises LayoutError naming
the document and the place in it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from transforms.adapt.changes import DocumentChange, LayoutError, pointer_token
from transforms.adapt.vocabulary import Adaptation

IPV4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?:/(\d{1,2}))?(?!\.?\d)")
MAC = re.compile(
    r"(?<![0-9A-Fa-f:-])([0-9A-Fa-f]{2}(?:([:-])[0-9A-Fa-f]{2})(?:\2[0-9A-Fa-f]{2}){4})(?![0-9A-Fa-f:-])"
)
STRAY_REASON = "an address of old subnet {name} the environment does not name; moved with its subnet"
AMBIGUOUS_REASON = "warning: left unchanged: old storage path {old} is ambiguous: {count} new paths ({news})"


@dataclass(frozen=True)
class MovedSubnet:
    name: str
    old: ipaddress.IPv4Network
    new: ipaddress.IPv4Network
    adaptation: Adaptation


@dataclass(frozen=True)
class Rewrite:
    """One mapped value (old → new) and the adaptation that explains it."""

    old: str
    new: str
    adaptation: Adaptation


@dataclass(frozen=True)
class ValueMap:
    """What the plan moves. `paths` maps a scope (a document path prefix such as `directors/dir-1/`,
    or "" for every document) to its old path → new path rewrites."""

    subnets: tuple[MovedSubnet, ...]
    addresses: Mapping[str, Rewrite]
    paths: Mapping[str, Mapping[str, Rewrite]]
    macs: Mapping[str, Rewrite]
    hostnames: Mapping[str, Rewrite]
    ambiguous_paths: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # old → its new paths


@dataclass
class ValueAdapter:
    """Applies a ValueMap to documents; remembers the stray addresses it has moved so that one old
    address gets one new address in every document, and in `left` each place where an ambiguous old
    storage path stays as it was (a warning adaptation, by document and pointer)."""

    values: ValueMap
    strays: dict[str, Rewrite] = field(default_factory=dict)
    left: dict[tuple[str, str], Adaptation] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.taken = {ipaddress.IPv4Address(r.new) for r in self.values.addresses.values() if _is_ip(r.new)}
        self._path_patterns: dict[str, tuple[re.Pattern[str], dict[str, Rewrite]] | None] = {}
        self._scope_order = {scope: i for i, scope in enumerate(self.values.paths) if scope}
        self._ambiguous = _paths_regex(self.values.ambiguous_paths) if self.values.ambiguous_paths else None

    def document(self, rel: str, data: Any) -> tuple[Any, list[DocumentChange]]:
        """`data` with every mapped value rewritten, and one change per rewritten string."""
        changes: list[DocumentChange] = []
        return self._walk(data, rel, "", changes), changes

    def _walk(self, value: Any, rel: str, pointer: str, changes: list[DocumentChange]) -> Any:
        if isinstance(value, dict):
            return {k: self._walk(v, rel, f"{pointer}/{pointer_token(k)}", changes) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v, rel, f"{pointer}/{i}", changes) for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value
        new, reasons = self.text(value, rel, pointer)
        if new != value:
            changes.append(DocumentChange(rel, pointer, value, new, tuple(dict.fromkeys(reasons))))
        return new

    def text(self, value: str, rel: str, pointer: str = "") -> tuple[str, list[Adaptation]]:
        """`value` with every mapped value in it rewritten, and the adaptations used."""
        used: list[Adaptation] = []
        whole = self.values.hostnames.get(value)
        if whole is not None:
            return whole.new, [whole.adaptation]

        def apply(rewrite: Rewrite | None, found: str) -> str:
            if rewrite is None:
                return found
            used.append(rewrite.adaptation)
            return rewrite.new

        value = IPV4.sub(lambda m: self._address(m, rel, pointer, used), value)
        value = MAC.sub(lambda m: self._mac(m.group(1), used), value)
        scoped = self._paths_for(rel)
        if scoped is not None:
            pattern, rewrites = scoped
            value = pattern.sub(lambda m: apply(rewrites[m.group(1)], m.group(1)), value)
        self._note_left(value, rel, pointer)
        return value, used

    def _note_left(self, value: str, rel: str, pointer: str) -> None:
        """A warning for each ambiguous old storage path that `value` still holds."""
        if self._ambiguous is None:
            return
        for match in self._ambiguous.finditer(value):
            old = match.group(1)
            news = self.values.ambiguous_paths.get(old) or self.values.ambiguous_paths[old + "/"]
            reason = AMBIGUOUS_REASON.format(old=old, count=len(news), news=", ".join(news))
            place = f"{rel} {pointer or '/'}"
            self.left.setdefault((rel, pointer), Adaptation("storage-path", place, value, value, reason))

    def _mac(self, found: str, used: list[Adaptation]) -> str:
        """The new MAC of an old one however it is spelled (either case, `:` or `-`), spelled alike."""
        rewrite = self.values.macs.get(found.lower().replace("-", ":"))
        if rewrite is None:
            return found
        used.append(rewrite.adaptation)
        new = rewrite.new.replace(":", "-") if "-" in found else rewrite.new.replace("-", ":")
        return new.upper() if found.isupper() else new.lower()

    def _address(self, match: re.Match[str], rel: str, pointer: str, used: list[Adaptation]) -> str:
        text, prefix = match.group(1), match.group(2)
        try:
            ip = ipaddress.IPv4Address(text)
        except ValueError:
            return match.group(0)
        subnet = next((s for s in self.values.subnets if ip in s.old), None)
        if subnet is None:
            return match.group(0)
        if prefix is not None and int(prefix) == subnet.old.prefixlen:
            if ip == subnet.old.network_address:  # the subnet itself
                used.append(subnet.adaptation)
                return str(subnet.new)
            prefix = str(subnet.new.prefixlen)
        rewrite = self.values.addresses.get(text) or self._stray(ip, subnet, rel, pointer)
        used.append(rewrite.adaptation)
        return rewrite.new if prefix is None else f"{rewrite.new}/{prefix}"

    def _stray(self, ip: ipaddress.IPv4Address, subnet: MovedSubnet, rel: str, pointer: str) -> Rewrite:
        """The new address of an old one the plan does not list: same host part, else the lowest free."""
        known = self.strays.get(str(ip))
        if known is not None:
            return known
        offset = int(ip) - int(subnet.old.network_address)
        if ip in (subnet.old.network_address, subnet.old.broadcast_address):
            new = subnet.new.network_address if offset == 0 else subnet.new.broadcast_address
        else:
            new = self._free(subnet, offset, rel, pointer)
            self.taken.add(new)
        reason = STRAY_REASON.format(name=subnet.name)
        rewrite = Rewrite(
            str(ip), str(new), Adaptation("address", f"address in {subnet.name}", str(ip), str(new), reason)
        )
        self.strays[str(ip)] = rewrite
        return rewrite

    def _free(self, subnet: MovedSubnet, offset: int, rel: str, pointer: str) -> ipaddress.IPv4Address:
        hosts = subnet.new.num_addresses - 1
        if 0 < offset < hosts:
            candidate = subnet.new.network_address + offset
            if candidate not in self.taken:
                return candidate
        for candidate in subnet.new.hosts():
            if candidate not in self.taken:
                return candidate
        raise LayoutError(
            [f"{rel}: {pointer or '/'}: no free address left in {subnet.new} for {subnet.name}"]
        )

    def _paths_for(self, rel: str) -> tuple[re.Pattern[str], dict[str, Rewrite]] | None:
        """The path rewrites that apply to document `rel`, as one pattern (longest old path first)."""
        scope = _first_scope(rel, self._scope_order)
        if scope not in self._path_patterns:
            rewrites = {**self.values.paths.get("", {}), **self.values.paths.get(scope, {})}
            self._path_patterns[scope] = _path_pattern(rewrites)
        return self._path_patterns[scope]


def _first_scope(rel: str, scope_order: Mapping[str, int]) -> str:
    """The first scope (in `scope_order`) that `rel` lies in, else "": its folders looked up, not
    every scope tried (one pass over the scopes for each value grew with values times volumes)."""
    heads = (rel[: i + 1] for i, char in enumerate(rel) if char == "/")
    return min((head for head in heads if head in scope_order), key=scope_order.__getitem__, default="")


def _path_pattern(rewrites: dict[str, Rewrite]) -> tuple[re.Pattern[str], dict[str, Rewrite]] | None:
    """A pattern finding any old path whole or as the head of a longer path, also after `scheme://`."""
    if not rewrites:
        return None
    return _paths_regex(rewrites), {p.rstrip("/"): rewrite for p, rewrite in rewrites.items()}


def _paths_regex(olds: Iterable[str]) -> re.Pattern[str]:
    """Any of `olds` whole or as the head of a longer path (longest first), also after `scheme://`."""
    alternatives = "|".join(re.escape(p.rstrip("/")) for p in sorted(olds, key=len, reverse=True))
    return re.compile(rf"(?:(?<=://)|(?<![\w./-]))({alternatives})(?=/|$|[^\w.-])")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def rewrites(pairs: Iterable[tuple[str, str, Adaptation]]) -> dict[str, Rewrite]:
    """old → Rewrite for (old, new, adaptation) triples whose old and new differ."""
    return {old: Rewrite(old, new, adaptation) for old, new, adaptation in pairs if old != new}
