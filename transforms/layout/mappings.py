"""The plan's mappings as values to look for: which old value becomes which new one, and why.

`value_map(plan, environment, inventory, adaptations)` turns the plan's subnets, addresses, storage
paths and node mapping (with the old nodes' NICs onto the inventory's, in order) into a `ValueMap`;
each rewrite carries the plan's adaptation that explains it, found by `PlanAdaptations.find`, or a
synthesised one (reason EDITED_REASON) when the plan was edited by hand and lists none.
`ambiguous_path_warnings(plan, documents)` lists where an old path that several entries of the plan
use stays unchanged (for the plan and the report).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from omni_recovery.adapt.inventory import Inventory
from transforms.adapt.values import MovedSubnet, Rewrite, ValueAdapter, ValueMap, rewrites
from transforms.adapt.vocabulary import Adaptation
from transforms.documents import Environment
from transforms.layout.files import parse_document
from transforms.plan import Plan

EDITED_REASON = "set in the (edited) plan; the plan lists no adaptation for it"


@dataclass(frozen=True)
class PlanAdaptations:
    """The plan's adaptations, searched by kind and criteria."""

    adaptations: tuple[Adaptation, ...]

    def find(
        self,
        fallback: Adaptation,
        *,
        subject: str | None = None,
        prefix: str | None = None,
        old: str | None = None,
        new: str | None = None,
        new_prefix: str | None = None,
    ) -> Adaptation:
        """The first adaptation of `fallback.kind` matching every criterion given, else `fallback`:
        subject equal, subject `prefix` (whole words), old / new equal, new starting with `new_prefix`."""
        for a in self.adaptations:
            if (
                a.kind == fallback.kind
                and (subject is None or a.subject == subject)
                and (prefix is None or a.subject == prefix or a.subject.startswith(prefix + " "))
                and (old is None or a.old == old)
                and (new is None or a.new == new)
                and (new_prefix is None or a.new.startswith(new_prefix))
            ):
                return a
        return fallback

    def all(self, kind: str, prefix: str) -> list[Adaptation]:
        """Every adaptation of `kind` whose subject is `prefix` or starts with it (whole words)."""
        return [
            a
            for a in self.adaptations
            if a.kind == kind and (a.subject == prefix or a.subject.startswith(prefix + " "))
        ]


def value_map(plan: Plan, env: Environment, inventory: Inventory, known: PlanAdaptations) -> ValueMap:
    return ValueMap(
        subnets=tuple(_subnets(plan, known)),
        addresses=rewrites(
            (
                a.old,
                a.new,
                known.find(Adaptation("address", a.owner, a.old, a.new, EDITED_REASON), old=a.old, new=a.new),
            )
            for a in plan.addresses
        ),
        paths=_paths(plan, known),
        ambiguous_paths=ambiguous_paths(plan),
        macs=_macs(plan, env, inventory, known),
        hostnames=rewrites(
            (
                old,
                new,
                known.find(Adaptation("node", f"node {old}", old, new, EDITED_REASON), prefix=f"node {old}"),
            )
            for old, new in sorted(hostnames(plan, env).items())
        ),
    )


def hostnames(plan: Plan, env: Environment) -> dict[str, str]:
    """Old node name → new node name: the plan's node mapping and each Director's node."""
    names = {n.old_node: n.name for n in plan.nodes if n.old_node}
    for n in plan.nodes:
        if n.director and n.director in {d.director_id for d in env.directors}:
            old = env.director(n.director).node
            if old:
                names.setdefault(old, n.name)
    return names


def _subnets(plan: Plan, known: PlanAdaptations) -> list[MovedSubnet]:
    moved = []
    for s in plan.subnets:
        old, new = ipaddress.IPv4Network(s.old, strict=False), ipaddress.IPv4Network(s.new, strict=False)
        fallback = Adaptation("subnet", f"subnet {s.name}", str(old), str(new), EDITED_REASON)
        moved.append(MovedSubnet(s.name, old, new, known.find(fallback, subject=f"subnet {s.name}")))
    return moved


def _paths(plan: Plan, known: PlanAdaptations) -> dict[str, dict[str, Rewrite]]:
    """Rewrites by scope: a Director's or volume's own documents, and every document ("") for an old
    path that only one entry of the plan uses."""
    scoped: dict[str, dict[str, Rewrite]] = defaultdict(dict)
    ambiguous = ambiguous_paths(plan)
    for p in plan.paths:
        if not p.old_path or p.old_path == p.new_path:
            continue
        fallback = Adaptation("storage-path", p.subject, p.old_path, p.new_path, EDITED_REASON)
        rewrite = Rewrite(p.old_path, p.new_path, known.find(fallback, subject=p.subject, new=p.new_path))
        kind, _, name = p.subject.partition(":")
        scope = f"directors/{name.split('/')[0]}/" if kind == "director" else f"volumes/{name}/"
        scoped[scope][p.old_path] = rewrite
        if p.old_path not in ambiguous:
            scoped[""][p.old_path] = rewrite
    return dict(scoped)


def ambiguous_paths(plan: Plan) -> dict[str, tuple[str, ...]]:
    """Each old storage path that several entries of the plan move to different new paths → those
    paths: left as it is outside the documents of the Directors and volumes that own it."""
    users: dict[str, set[str]] = defaultdict(set)
    for p in plan.paths:
        if p.old_path:
            users[p.old_path].add(p.new_path)
    return {old: tuple(sorted(news)) for old, news in sorted(users.items()) if len(news) > 1}


def ambiguous_path_warnings(plan: Plan, documents: Mapping[str, bytes]) -> tuple[Adaptation, ...]:
    """A warning for each place of a document (outside the Directors' and volumes' own) that holds an
    old storage path several entries of the plan move to different new paths: it is left unchanged."""
    adapter = ValueAdapter(ValueMap((), {}, _paths(plan, PlanAdaptations(())), {}, {}, ambiguous_paths(plan)))
    for rel, raw in sorted(documents.items()):
        try:
            adapter.document(rel, parse_document(rel, raw))
        except ValueError:  # not YAML or JSON: its text is adapted as a whole
            adapter.text(raw.decode("utf-8", errors="replace"), rel)
    return tuple(adapter.left[key] for key in sorted(adapter.left))


def _macs(plan: Plan, env: Environment, inventory: Inventory, known: PlanAdaptations) -> dict[str, Rewrite]:
    """Old NIC MAC → the MAC of the inventory NIC in the same place (the last when the new node has fewer)."""
    old_nodes = {n.name: n for n in env.nodes}
    found: dict[str, Rewrite] = {}
    for entry in plan.nodes:
        old_node = old_nodes.get(entry.old_node or "")
        new_nics = inventory.node(entry.name).nics if entry.name in {n.name for n in inventory.nodes} else ()
        if old_node is None or not new_nics:
            continue
        for i, nic in enumerate(old_node.nics):
            new = new_nics[min(i, len(new_nics) - 1)]
            fallback = Adaptation(
                "mac",
                f"node {old_node.name} {nic.name}",
                f"{nic.name} {nic.mac}",
                f"{entry.name} {new.name} {new.mac}",
                EDITED_REASON,
            )
            adaptation = known.find(fallback, prefix=f"node {old_node.name} {nic.name}")
            if nic.mac and nic.mac.lower() != new.mac.lower():
                found[nic.mac.lower()] = Rewrite(nic.mac, new.mac, adaptation)
    return found
