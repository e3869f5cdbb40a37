"""What lands on each target root after a restore: the old environment's files, placed and adapted.

Pure transform, no Dagster and no I/O: `target_layout(environment, documents, plan, inventory,
env_files=...)` takes the old environment (its model, the bytes of its small configuration documents
and the list of every entry of its state folder) with the recovery plan and the target inventory, and
says, for every file, under which root it goes (`node:<inventory node>` or `pool:<storage pool>`), at
which environment-state-shaped path, and whether its bytes are copied unchanged from the backup
(`source`) or are a document rewritten for the new infrastructure (`content`).

Where things go (see docs/restore-layout.md):

- `directors/{id}/...` → the node the plan maps that Director onto;
- `orchestrators/{id}/...`, `services/{name}/...`, `applications/{app}/...` → the node of the Director
  that runs the component's VM after the plan's placement;
- `volumes/{app}/{vol}/files/...` → the storage pool of the plan's path for that volume, at
  `{path under the pool root}/files/...`; `volumes/{app}/{vol}/volume.yaml` → the application's node;
- `environment.yaml`, `recovery/...`, `keys/*.crt`, `network/...` and `nodes/{node}.yaml` (the NEW
  nodes, one per inventory node the plan maps an old node onto) → every Director node, identical;
  so does whatever else another writer keeps below `data/` (`system/...`, `keys/*.enc`, …); its
  entries for folders outside volumes are not needed (folders are made for their files);
- `keys/*.key` (the old private keys) → nowhere: a new CA is made at restore time. The backup's
  `keys/ca.crt` goes to `keys/old-ca.crt`: `keys/ca.crt` is the new CA's, and a backed-up file at
  another path the new certificates take (`issued_paths`) is dropped.

Every value a rewrite changes is traced to an `Adaptation` of the plan (returned in
`adaptations_applied`), so "restored = source except the listed adaptations" can be checked. A plan
edited by hand (a VM moved, a size or a pool changed) may lack the adaptation for its edit; then one
is synthesised from the plan's own entries, with the reason `EDITED_REASON`. The one change that is no
adaptation: each Director's `state.json` history gains a last entry `director.restored` ("restored
from backup <set id>").

Documents are re-serialised deterministically (YAML: `yaml.safe_dump(sort_keys=False)`, key order
kept; JSON: two-space indent); a document whose content does not change is copied unchanged instead.
A plan that names nodes, pools, VMs, Directors or volumes the environment or the inventory lacks, or
that leaves part of the environment without a node, a placement, a path or an address, is refused
with a LayoutError listing every problem.
"""

from __future__ import annotations

import copy
import fnmatch
import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from omni_recovery.backupset.layout import check_relative_path
from omni_recovery.envstate.model import component_of, place, volume_files_root
from omni_recovery.errors import RecoveryError
from omni_recovery.inventory import Inventory, InventoryNode
from omni_recovery.urls import is_under, split_url
from omni_recovery.yaml_text import load_yaml, safe_dump
from transforms.environment_model import Adaptation, Environment
from transforms.planner import PathEntry, PlacementEntry, Plan
from transforms.storage_paths import safe_join

__all__ = [
    "EDITED_REASON",
    "NOT_RESTORED",
    "OLD_CA_CERT",
    "RESTORED_EVENT",
    "LayoutError",
    "TargetFile",
    "TargetLayout",
    "dump_json",
    "dump_yaml",
    "is_restored",
    "issued_paths",
    "node_root",
    "pool_root",
    "scale_cpu",
    "scale_memory",
    "target_layout",
]

NOT_RESTORED: tuple[str, ...] = ("keys/ca.key",)
"""Environment paths (fnmatch, `*` within one segment) never restored: the old CA's private key (a new CA
is issued at restore time). Other key material, such as service-account keys, is restored."""

OLD_CA_CERT = "keys/old-ca.crt"
"""Where the backup's CA certificate is restored: `keys/ca.crt` is the new CA's."""

EDITED_REASON = "set in the (edited) plan; the plan lists no adaptation for it"
RESTORED_EVENT = "director.restored"
# Everything else below data/ (environment.yaml, recovery/, keys/, network/, and what another writer
# adds, e.g. system/...) is shared: it goes to every Director node.
COMPONENT_TOP = ("nodes", "directors", "orchestrators", "services", "applications", "volumes")


class LayoutError(RecoveryError):
    """The plan does not fit the environment or the inventory (or a document is missing or malformed);
    `problems` lists every problem found."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = sorted(set(problems))
        super().__init__("the target layout cannot be made:\n  " + "\n  ".join(self.problems))


@dataclass(frozen=True)
class TargetFile:
    """One entry written under a target root.

    root: `node:<inventory node>` or `pool:<storage pool>`; relpath: its environment-state-shaped path
    under that root; source: the environment path whose stored bytes are copied unchanged (for a `dir`
    or `symlink` entry: the entry recreated), or None; content: the new bytes of a rewritten document,
    or None (exactly one of source/content is set); mode: the original entry's mode; component: the
    backup component it belongs to; origin: the environment path it restores (== source for copies;
    `nodes/{old}.yaml` for the new `nodes/{new}.yaml`); type: file, dir or symlink.
    """

    root: str
    relpath: str
    source: str | None
    content: bytes | None
    mode: int
    component: str | None
    origin: str | None = None
    type: str = "file"


@dataclass(frozen=True)
class TargetLayout:
    """Everything a restore writes: files (sorted by root, relpath); volume id (`volume:{app}/{vol}`) →
    (root, relpath of its files/ folder); the adaptations the rewrites realise (the plan's, in plan
    order, then any synthesised for an edited plan);
    and the environment files deliberately not restored, with why (old nodes the plan retires).
    The old private keys (NOT_RESTORED) appear nowhere."""

    files: tuple[TargetFile, ...]
    volume_roots: dict[str, tuple[str, str]]
    adaptations_applied: tuple[Adaptation, ...]
    dropped: tuple[tuple[str, str], ...] = ()

    @property
    def roots(self) -> tuple[str, ...]:
        return tuple(sorted({f.root for f in self.files}))

    def under(self, root: str) -> tuple[TargetFile, ...]:
        """The files of one root."""
        return tuple(f for f in self.files if f.root == root)

    def file(self, root: str, relpath: str) -> TargetFile:
        for f in self.files:
            if f.root == root and f.relpath == relpath:
                return f
        raise KeyError((root, relpath))


def node_root(name: str) -> str:
    return f"node:{name}"


def pool_root(name: str) -> str:
    return f"pool:{name}"


def is_restored(relpath: str) -> bool:
    """False for the environment paths a restore never writes (NOT_RESTORED)."""
    parts = relpath.split("/")
    for pattern in NOT_RESTORED:
        pattern_parts = pattern.split("/")
        if len(parts) == len(pattern_parts) and all(
            fnmatch.fnmatchcase(p, q) for p, q in zip(parts, pattern_parts, strict=True)
        ):
            return False
    return True


def issued_paths(nodes: Iterable[str]) -> frozenset[str]:
    """The paths the certificates issued at restore time take on a node root (the new CA's, the old CA
    certificate's and each node's own), which no backed-up file may overwrite."""
    own = [f"keys/{node}.{ext}" for node in nodes for ext in ("crt", "key")]
    return frozenset(["keys/ca.crt", "keys/ca.key", OLD_CA_CERT, *own])


def dump_yaml(data: Any) -> bytes:
    """A rewritten YAML document: deterministic, key order kept."""
    text = safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)
    return text.encode("utf-8")


def dump_json(data: Any) -> bytes:
    """A rewritten JSON document (the environment's own style: two-space indent, trailing newline)."""
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# -- the transform -----------------------------------------------------------------------------------


def target_layout(
    environment: Environment,
    documents: Mapping[str, bytes],
    plan: Plan,
    inventory: Inventory,
    *,
    env_files: Iterable[tuple[str, str, int]],
    restored_at: str | None = None,
) -> TargetLayout:
    """The layout of `environment` restored per `plan` onto `inventory`.

    documents: environment path → bytes of the small configuration documents (every YAML/JSON file
    outside volume trees and orchestrator tables is enough). env_files: (environment path, type
    file|dir|symlink, mode) of every entry of the old environment. restored_at: the time written in
    the Directors' `director.restored` history entry (RFC 3339); default the backup's recovery point
    (recovery/recovery_metadata.yaml), else the last history entry's time, so the same inputs always
    give the same bytes. Raises LayoutError listing every problem.
    """
    return _Builder(environment, documents, plan, inventory, restored_at).build(list(env_files))


@dataclass
class _Builder:
    env: Environment
    documents: Mapping[str, bytes]
    plan: Plan
    inventory: Inventory
    restored_at: str | None
    problems: list[str] = field(default_factory=list)
    applied: dict[Adaptation, None] = field(default_factory=dict)
    files: list[TargetFile] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    volume_roots: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        plan, env = self.plan, self.env
        self.address_map = {a.old: a for a in plan.addresses}
        self.subnet_map = {s.name: s for s in plan.subnets}
        self.cidr_map = {_cidr(s.old): s.new for s in plan.subnets}
        self.old_nets = [
            (s.name, ipaddress.ip_network(s.cidr, strict=False))
            for s in env.network.subnets
            if _is_cidr(s.cidr)
        ]
        self.placements: dict[str, PlacementEntry] = {p.vm_id: p for p in plan.placements}
        self.director_node = {n.director: n.name for n in plan.nodes if n.director}
        self.new_of_old = {n.old_node: n.name for n in plan.nodes if n.old_node}
        self.paths: dict[str, PathEntry] = {p.subject: p for p in plan.paths}
        self.pools = {p.name: p for p in plan.pools}
        self.director_roots = [node_root(self.director_node[d]) for d in sorted(self.director_node)]
        self.vm_owner = {vm.owner: vm for vm in env.vms}
        self.issued = issued_paths(n.name for n in plan.nodes)

    # -- entry ---------------------------------------------------------------------------------------

    def build(self, env_files: list[tuple[str, str, int]]) -> TargetLayout:
        self._check_references()
        if self.problems:
            raise LayoutError(self.problems)
        self._volume_roots()
        listed: set[str] = set()
        for rel, _, _ in env_files:
            if rel in listed:
                self.problems.append(f"{rel}: listed twice in the environment's files")
            listed.add(rel)
        for rel, kind, mode in env_files:
            if not is_restored(rel):
                continue
            try:
                self._entry(rel, kind, mode)
            except LayoutError as exc:
                self.problems.extend(exc.problems)
            except RecoveryError as exc:  # place() refusing a path, a bad volume path ...
                self.problems.append(str(exc))
        seen: dict[tuple[str, str], str | None] = {}
        for f in self.files:
            key = (f.root, f.relpath)
            if key in seen:
                self.problems.append(
                    f"{f.root}: {f.relpath} would be written twice ({seen[key]}, {f.origin})"
                )
            seen[key] = f.origin
        if self.problems:
            raise LayoutError(self.problems)
        return TargetLayout(
            files=tuple(sorted(self.files, key=lambda f: (f.root, f.relpath))),
            volume_roots=dict(sorted(self.volume_roots.items())),
            adaptations_applied=self._applied_in_order(),
            dropped=tuple(sorted(self.dropped)),
        )

    def _applied_in_order(self) -> tuple[Adaptation, ...]:
        """The plan's adaptations in plan order, then the synthesised ones, sorted."""
        listed = [a for a in dict.fromkeys(self.plan.adaptations) if a in self.applied]
        known = set(self.plan.adaptations)
        extra = sorted(
            (a for a in self.applied if a not in known), key=lambda a: (a.kind, a.subject, a.old, a.new)
        )
        return (*listed, *extra)

    # -- checks --------------------------------------------------------------------------------------

    def _check_references(self) -> None:
        env, plan, add = self.env, self.plan, self.problems.append
        inv_nodes = {n.name for n in self.inventory.nodes}
        inv_pools = {p.name: p for p in self.inventory.storage}
        directors = {d.director_id for d in env.directors}
        old_nodes = {n.name for n in env.nodes}
        owners = {vm.vm_id: vm.owner for vm in env.vms}
        for n in plan.nodes:
            if n.name not in inv_nodes:
                add(f"plan node {n.name}: not in the inventory")
            if n.director and n.director not in directors:
                add(f"plan node {n.name}: Director {n.director} is not in the environment")
            if n.old_node and n.old_node not in old_nodes:
                add(f"plan node {n.name}: old node {n.old_node} is not in the environment")
        for d in sorted(directors - set(self.director_node)):
            add(f"Director {d}: the plan maps it onto no node")
        for p in plan.placements:
            if p.vm_id not in owners:
                add(f"placement of VM {p.name} ({p.vm_id}): no such VM in the environment")
            elif owners[p.vm_id] != p.component:
                add(f"placement of VM {p.name}: it runs {owners[p.vm_id]}, not {p.component}")
            if p.director not in self.director_node:
                add(f"placement of VM {p.name}: Director {p.director} has no node in the plan")
        for vm in env.vms:
            if vm.vm_id not in self.placements:
                add(f"VM {vm.name} ({vm.owner}): the plan places it nowhere")
        for pool in plan.pools:
            real = inv_pools.get(pool.name)
            if real is None:
                add(f"plan storage pool {pool.name}: not in the inventory")
            elif real.root != pool.root:
                add(f"plan storage pool {pool.name}: root {pool.root} is not the inventory's {real.root}")
        subjects = {v.component_id for v in env.volumes} | {
            f"director:{d.director_id}/{name}" for d in env.directors for name, _ in d.storage_paths
        }
        for path in plan.paths:
            if path.subject not in subjects:
                add(f"plan path {path.subject}: not a volume or Director path of the environment")
            in_plan = self.pools.get(path.pool)
            if in_plan is None:
                add(f"plan path {path.subject}: unknown storage pool {path.pool}")
            elif not is_under(in_plan.root, path.new_path):
                add(f"plan path {path.subject}: {path.new_path} lies outside storage root {in_plan.root}")
        for subject in sorted(subjects - set(self.paths)):
            add(f"{subject}: the plan gives it no new path")
        env_subnets = {s.name for s in env.network.subnets}
        for s in plan.subnets:
            if s.name not in env_subnets:
                add(f"plan subnet {s.name}: not a subnet of the environment")
        for name in sorted(env_subnets - set(self.subnet_map)):
            add(f"subnet {name}: the plan maps it onto no new subnet")

    def _volume_roots(self) -> None:
        for volume in self.env.volumes:
            entry = self.paths[volume.component_id]
            pool = self.pools[entry.pool]
            _, root_path = split_url(pool.root)
            _, path = split_url(entry.new_path)
            rel = path[len(root_path.rstrip("/")) + 1 :]
            try:
                safe_join(pool.root, *rel.split("/"), "files")
            except RecoveryError as exc:
                self.problems.append(f"{volume.component_id}: {exc}")
                continue
            self.volume_roots[volume.component_id] = (pool_root(pool.name), f"{rel}/files")
        if self.problems:
            raise LayoutError(self.problems)

    # -- adaptations ---------------------------------------------------------------------------------

    def explain(
        self,
        fallback: Adaptation,
        *,
        subject: str | None = None,
        prefix: str | None = None,
        old: str | None = None,
        new: str | None = None,
        new_prefix: str | None = None,
    ) -> None:
        """Record the plan's first adaptation of `fallback.kind` matching every criterion given (else
        `fallback`, synthesised): subject equal / subject `prefix` (whole words), old / new equal, new
        starting with `new_prefix`."""
        for a in self.plan.adaptations:
            if a.kind == fallback.kind and _matches(a, subject, prefix, old, new, new_prefix):
                self.applied.setdefault(a, None)
                return
        self.applied.setdefault(fallback, None)

    def explain_all(
        self, kind: str, *, subject: str | None = None, prefix: str | None = None, new: str | None = None
    ) -> None:
        """Record every adaptation of the plan of `kind` matching the criteria (see `explain`)."""
        for a in self.plan.adaptations:
            if a.kind == kind and _matches(a, subject, prefix, None, new, None):
                self.applied.setdefault(a, None)

    def address(self, value: Any, where: str) -> Any:
        """The new address of an old one (recording its adaptation); other values unchanged."""
        if not isinstance(value, str):
            return value
        entry = self.address_map.get(value)
        if entry is None:
            try:
                ip = ipaddress.ip_address(value)
            except ValueError:
                return value
            subnet = next((name for name, net in self.old_nets if ip in net), None)
            if subnet is not None:
                raise LayoutError(
                    [f"{where}: address {value} lies in old subnet {subnet}; the plan has no new one"]
                )
            return value
        if entry.new != value:
            self.explain(
                Adaptation("address", entry.owner, value, entry.new, EDITED_REASON), old=value, new=entry.new
            )
        return entry.new

    def node_change(self, old: str, new: str) -> None:
        self.explain(Adaptation("node", f"node {old}", old, new, EDITED_REASON), prefix=f"node {old}")

    def storage_path(self, entry: PathEntry, klass: str | None) -> None:
        self.explain(
            Adaptation("storage-path", entry.subject, entry.old_path, entry.new_path, EDITED_REASON),
            subject=entry.subject,
            new=entry.new_path,
        )
        if klass is not None and klass != entry.storage_class:
            self.explain(
                Adaptation("storage-class", entry.subject, klass, entry.storage_class, EDITED_REASON),
                subject=entry.subject,
                new=entry.storage_class,
            )
        elif klass is None:
            self.explain_all("storage-class", subject=entry.subject)

    def placement_change(self, p: PlacementEntry, old_director: str) -> None:
        if p.director != old_director:
            self.explain(
                Adaptation(
                    "placement",
                    f"VM {p.name} ({p.component})",
                    f"Director {old_director}",
                    f"Director {p.director} on {p.node}",
                    EDITED_REASON,
                ),
                subject=f"VM {p.name} ({p.component})",
                new_prefix=f"Director {p.director} on ",
            )

    def scaling_change(self, p: PlacementEntry, old_cpu: int, old_memory: int) -> None:
        if (p.cpu, p.memory_mib) != (old_cpu, old_memory):
            self.explain(
                Adaptation(
                    "scaling",
                    p.component,
                    f"{old_cpu} vCPU, {old_memory} MiB",
                    f"{p.cpu} vCPU, {p.memory_mib} MiB",
                    EDITED_REASON,
                ),
                subject=p.component,
                new_prefix=f"{p.cpu} vCPU, {p.memory_mib} MiB",
            )

    # -- documents -----------------------------------------------------------------------------------

    def doc(self, rel: str) -> Any:
        raw = self.documents.get(rel)
        if raw is None:
            raise LayoutError([f"{rel}: not among the documents given (needed to rewrite it)"])
        try:
            text = raw.decode("utf-8")
            return json.loads(text) if rel.endswith(".json") else load_yaml(text)
        except (UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
            raise LayoutError([f"{rel}: cannot be read: {exc}"]) from exc

    def emit(
        self,
        roots: list[str],
        relpath: str,
        origin: str,
        mode: int,
        kind: str = "file",
        new: Any = None,
        old: Any = None,
    ) -> None:
        """Write `origin` at `relpath` under each root: copied when `new` is None or equals `old`."""
        check_relative_path(relpath)
        component = component_of(origin)
        if new is None or new == old:
            source, content = origin, None
        else:
            source, content = None, dump_json(new) if relpath.endswith(".json") else dump_yaml(new)
        for root in roots:
            self.files.append(TargetFile(root, relpath, source, content, mode, component, origin, kind))

    # -- one entry of the environment ----------------------------------------------------------------

    def _entry(self, rel: str, kind: str, mode: int) -> None:
        parts = rel.split("/")
        head = parts[0]
        if kind == "dir" and volume_files_root(rel) is None:
            return  # another writer's entry for a folder outside a volume: made for the files it holds
        if head in COMPONENT_TOP:
            place(rel)  # refuses paths these folders cannot hold
        if head == "nodes":
            self._node_file(rel, mode)
        elif head not in COMPONENT_TOP:  # also another writer's data/system/... files and other folders
            self._shared(rel, mode)
        elif head == "directors":
            director = parts[1]
            root = node_root(self.director_node[director]) if director in self.director_node else None
            if root is None:
                raise LayoutError([f"{rel}: Director {director} is not in the plan"])
            name = "/".join(parts[2:])
            new = old = None
            if name in ("config.yaml", "state.json", "hardware.yaml"):
                old = self.doc(rel)
                new = {
                    "config.yaml": self._director_config,
                    "state.json": self._director_state,
                    "hardware.yaml": self._director_hardware,
                }[name](director, old, rel)
            self.emit([root], rel, rel, mode, kind, new, old)
        elif head in ("orchestrators", "services", "applications"):
            component = {
                "orchestrators": "orchestrator",
                "services": "service",
                "applications": "application",
            }[head]
            if f"{component}:{parts[1]}" not in self.vm_owner:
                # Another writer's set need not say which VM runs what: copied unchanged to where the
                # plan's step runs (an application's Orchestrator, else the first Director).
                self.emit([self._root_without_vm(component, parts[1])], rel, rel, mode, kind)
                return
            placement = self._placement_of(f"{component}:{parts[1]}", rel)
            root = node_root(placement.node)
            new = old = None
            name = "/".join(parts[2:])
            if name in ("config.yaml", "service.yaml", "app.yaml") and kind == "file":
                old = self.doc(rel)
                new = self._rewrite_component(head, old, placement, rel)
            self.emit([root], rel, rel, mode, kind, new, old)
        elif head == "volumes":
            self._volume_entry(rel, kind, mode)
        else:  # pragma: no cover - place() accepts nothing else below COMPONENT_TOP
            raise LayoutError([f"{rel}: not part of an environment state folder"])

    def _component_root(self, kind: str, name: str, rel: str) -> str:
        """The node root of the component `kind:name`: its VM's node, or where one without a VM goes."""
        if f"{kind}:{name}" not in self.vm_owner:
            return self._root_without_vm(kind, name)
        return node_root(self._placement_of(f"{kind}:{name}", rel).node)

    def _root_without_vm(self, kind: str, name: str) -> str:
        """The node root for the files of a component that runs on no VM of the environment."""
        apps = self.env.applications if kind == "application" else ()
        app = next((a for a in apps if a.name == name), None)
        if app is not None:
            vm = self.vm_owner.get(f"orchestrator:{app.orchestrator}")
            if vm is not None and vm.vm_id in self.placements:
                return node_root(self.placements[vm.vm_id].node)
        return self.director_roots[0]

    def _placement_of(self, component: str, rel: str) -> PlacementEntry:
        vm = self.vm_owner.get(component)
        if vm is None:
            raise LayoutError([f"{rel}: {component} runs on no VM of the environment; it has no node"])
        return self.placements[vm.vm_id]

    # -- shared documents ----------------------------------------------------------------------------

    def _shared(self, rel: str, mode: int) -> None:
        new = old = None
        if rel == "keys/ca.crt":
            self.emit(self.director_roots, OLD_CA_CERT, rel, mode)
            return
        if rel in self.issued:
            self.dropped.append((rel, "its path holds a certificate or key issued at restore time"))
            return
        if rel == "environment.yaml":
            old = self.doc(rel)
            new = copy.deepcopy(old)
            dns = new.get("dns") if isinstance(new, dict) else None
            if isinstance(dns, dict) and isinstance(dns.get("servers"), list):
                dns["servers"] = [self.address(s, f"{rel}: dns.servers") for s in dns["servers"]]
            time = new.get("time") if isinstance(new, dict) else None
            if isinstance(time, dict) and isinstance(time.get("ntp_servers"), list):
                time["ntp_servers"] = [
                    self.address(s, f"{rel}: time.ntp_servers") for s in time["ntp_servers"]
                ]
        elif rel.startswith("network/") and rel.count("/") == 1 and rel.endswith(".yaml"):
            old = self.doc(rel)
            rewrite = {
                "network/subnets.yaml": self._subnets,
                "network/routes.yaml": self._routes,
                "network/policies.yaml": self._policies,
                "network/dns.yaml": self._dns,
                "network/connectivity.yaml": self._connectivity,
            }.get(rel)
            new = rewrite(copy.deepcopy(old), rel) if rewrite else None
        self.emit(self.director_roots, rel, rel, mode, "file", new, old)

    def _subnets(self, doc: Any, rel: str) -> Any:
        for name, subnet in _mapping(doc.get("subnets"), rel).items():
            entry = self.subnet_map[name]
            if isinstance(subnet, dict):
                if _cidr(str(subnet.get("cidr"))) != _cidr(entry.new):
                    subnet["cidr"] = entry.new
                    self.explain(
                        Adaptation("subnet", f"subnet {name}", entry.old, entry.new, EDITED_REASON),
                        subject=f"subnet {name}",
                    )
                subnet["gateway"] = self.address(subnet.get("gateway"), f"{rel}: {name}.gateway")
        return doc

    def _routes(self, doc: Any, rel: str) -> Any:
        for route in doc.get("routes") or []:
            before = dict(route)
            destination = str(route.get("destination", ""))
            new_destination = self.cidr_map.get(_cidr(destination))
            if new_destination is not None and _cidr(destination) != new_destination:
                route["destination"] = new_destination
            route["gateway"] = self.address(route.get("gateway"), f"{rel}: route to {destination}")
            if route != before:
                subject = f"route to {destination} via {route.get('subnet', '')}"
                self.explain(
                    Adaptation(
                        "route",
                        subject,
                        f"{destination} via {before.get('gateway')}",
                        f"{route['destination']} via {route['gateway']}",
                        EDITED_REASON,
                    ),
                    subject=subject,
                )
        return doc

    def _policies(self, doc: Any, rel: str) -> Any:
        for policy in doc.get("policies") or []:
            for side in ("from", "to"):
                refs = policy.get(side)
                if not isinstance(refs, dict):
                    continue
                for key, value in refs.items():
                    if key == "cidr":
                        refs[key] = self.cidr_map.get(_cidr(str(value)), value)
                    elif key in ("address", "ip"):
                        refs[key] = self.address(value, f"{rel}: policy {policy.get('name')}")
            name = policy.get("name")
            self.explain_all("policy", subject=f"policy {name}")
        return doc

    def _dns(self, doc: Any, rel: str) -> Any:
        if isinstance(doc.get("servers"), list):
            doc["servers"] = [self.address(s, f"{rel}: servers") for s in doc["servers"]]
        for record in doc.get("records") or []:
            old = record.get("address")
            record["address"] = self.address(old, f"{rel}: record {record.get('name')}")
            if record["address"] != old:
                name = record.get("name")
                self.explain(
                    Adaptation("dns", f"DNS {name}", str(old), str(record["address"]), EDITED_REASON),
                    subject=f"DNS {name}",
                )
        return doc

    def _connectivity(self, doc: Any, rel: str) -> Any:
        for link in doc.get("links") or []:
            for key in list(link):
                if key.endswith("address"):
                    link[key] = self.address(link[key], f"{rel}: link {link.get('from')} -> {link.get('to')}")
            source = link.get("from")
            self.explain_all("link", subject=f"links from {source}")
        return doc

    # -- nodes ---------------------------------------------------------------------------------------

    def _node_file(self, rel: str, mode: int) -> None:
        old = self.doc(rel)
        hostname = str(_mapping(old, rel).get("hostname", rel.rsplit("/", 1)[-1].removesuffix(".yaml")))
        new_name = self.new_of_old.get(hostname)
        if new_name is None:
            self.explain_all("node", prefix=f"node {hostname}", new="retired")
            self.dropped.append(
                (rel, f"node {hostname} is retired by the plan (no inventory node left for it)")
            )
            return
        new = self._hardware(hostname, new_name, old, rel)
        self.emit(self.director_roots, f"nodes/{new_name}.yaml", rel, mode, "file", new, old)

    def _hardware(self, old_name: str, new_name: str, old: Any, rel: str) -> dict[str, Any]:
        """The new node's hardware document: the inventory's, with the old NICs' addresses moved onto it."""
        node: InventoryNode = self.inventory.node(new_name)
        self.node_change(old_name, new_name)
        old = _mapping(old, rel)
        nics: list[dict[str, Any]] = []
        old_nics = [n for n in old.get("nics") or [] if isinstance(n, dict)]
        for i, nic in enumerate(old_nics):
            new_nic = node.nics[min(i, len(node.nics) - 1)] if node.nics else None
            ip = self.address(nic.get("ip"), f"{rel}: nic {nic.get('name')}")
            entry = {
                "name": new_nic.name if new_nic else nic.get("name"),
                "mac": new_nic.mac if new_nic else None,
                "ip": ip,
                "prefix": self._prefix(nic.get("ip"), nic.get("prefix")),
                "gateway": self.address(nic.get("gateway"), f"{rel}: nic {nic.get('name')} gateway"),
                "vlan": nic.get("vlan"),
            }
            nics.append(entry)
            old_nic = nic.get("name")
            self.explain(
                Adaptation(
                    "mac",
                    f"node {old_name} {old_nic}",
                    f"{old_nic} {nic.get('mac')}",
                    f"{new_name} {entry['name']} {entry['mac']}",
                    EDITED_REASON,
                ),
                prefix=f"node {old_name} {old_nic}",
            )
        nics.extend({"name": n.name, "mac": n.mac} for n in node.nics[len(old_nics) :])
        return {
            "hostname": new_name,
            "role": old.get("role", "director"),
            "cpu_cores": node.cpu_cores,
            "memory_mib": node.memory_mib,
            "disks": [{"device": d.device, "size_gib": d.size_gib} for d in node.disks],
            "nics": nics,
        }

    def _prefix(self, ip: Any, prefix: Any) -> Any:
        """The prefix length of the new subnet holding the old address `ip` (else the old prefix)."""
        try:
            address = ipaddress.ip_address(str(ip))
        except ValueError:
            return prefix
        for name, net in self.old_nets:
            if address in net:
                return ipaddress.ip_network(self.subnet_map[name].new, strict=False).prefixlen
        return prefix

    # -- Directors -----------------------------------------------------------------------------------

    def _old_node_of(self, director: str) -> str:
        return self.env.director(director).node

    def _director_config(self, director: str, old: Any, rel: str) -> Any:
        doc = copy.deepcopy(_mapping(old, rel))
        new_node = self.director_node[director]
        if doc.get("node") != new_node:
            self.node_change(str(doc.get("node")), new_node)
            doc["node"] = new_node
        addresses = doc.get("addresses")
        if isinstance(addresses, dict):
            for name in addresses:
                addresses[name] = self.address(addresses[name], f"{rel}: addresses.{name}")
        paths = doc.get("storage_paths")
        if isinstance(paths, dict):
            for name in paths:
                entry = self.paths.get(f"director:{director}/{name}")
                if entry is None:
                    raise LayoutError([f"{rel}: storage path {name} has no new path in the plan"])
                paths[name] = entry.new_path
                self.storage_path(entry, None)
        peers = doc.get("ring_peers") or []
        missing = [p for p in peers if p not in self.director_node]
        if missing:
            raise LayoutError(
                [f"{rel}: ring peer(s) {', '.join(map(str, missing))} have no node in the plan"]
            )
        return doc

    def _director_state(self, director: str, old: Any, rel: str) -> Any:
        doc = copy.deepcopy(_mapping(old, rel))
        raw_vms: dict[str, tuple[str, dict[str, Any]]] = {}
        for d in sorted(self.director_node):
            state_rel = f"directors/{d}/state.json"
            state = old if d == director else self.doc(state_rel)
            for vm in _mapping(state, state_rel).get("vms") or []:
                raw_vms[str(vm.get("vm_id"))] = (d, vm)
        vms = []
        for model in self.env.vms:
            p = self.placements[model.vm_id]
            if p.director != director or model.vm_id not in raw_vms:
                continue
            old_director, raw = raw_vms[model.vm_id]
            vm = copy.deepcopy(raw)
            self.placement_change(p, old_director)
            if p.cpu != model.cpu:
                vm["cpu"] = p.cpu
            if p.memory_mib != model.memory_mib:
                vm["memory_mib"] = p.memory_mib
            self.scaling_change(p, model.cpu, model.memory_mib)
            for net in vm.get("networks") or []:
                net["ip"] = self.address(net.get("ip"), f"{rel}: VM {model.name}")
            vms.append(vm)
        doc["vms"] = vms
        history = list(doc.get("history") or [])
        history.append(
            {
                "at": self._restored_at(history),
                "event": RESTORED_EVENT,
                "detail": f"restored from backup {self.plan.backup_set_id}",
            }
        )
        doc["history"] = history
        return doc

    def _restored_at(self, history: list[Any]) -> Any:
        if self.restored_at is not None:
            return self.restored_at
        if "recovery/recovery_metadata.yaml" in self.documents:
            meta = self.doc("recovery/recovery_metadata.yaml")
            if isinstance(meta, dict) and meta.get("recovery_point"):
                return str(meta["recovery_point"])
        last = history[-1] if history else None
        return last.get("at") if isinstance(last, dict) else None

    def _director_hardware(self, director: str, old: Any, rel: str) -> Any:
        old_node = str(_mapping(old, rel).get("hostname", self._old_node_of(director)))
        return self._hardware(old_node, self.director_node[director], old, rel)

    # -- Orchestrators, services, applications ---------------------------------------------------------

    def _rewrite_component(self, head: str, old: Any, placement: PlacementEntry, rel: str) -> Any:
        doc = copy.deepcopy(_mapping(old, rel))
        model = self.env.vm(placement.vm_id)
        director = doc.get("director")
        if head in ("orchestrators", "services") and director is not None and director != placement.director:
            self.placement_change(placement, str(director))
            doc["director"] = placement.director
        if head == "orchestrators" and "address" in doc:
            doc["address"] = self.address(doc["address"], f"{rel}: address")
        if head == "applications":
            cpu_factor = placement.cpu / model.cpu if model.cpu else 1.0
            memory_factor = placement.memory_mib / model.memory_mib if model.memory_mib else 1.0
            if (cpu_factor, memory_factor) != (1.0, 1.0):
                self.scaling_change(placement, model.cpu, model.memory_mib)
            for container in doc.get("containers") or []:
                if cpu_factor != 1.0 and isinstance(container.get("cpu"), int | float):
                    container["cpu"] = scale_cpu(container["cpu"], cpu_factor)
                if memory_factor != 1.0 and isinstance(container.get("memory_mib"), int | float):
                    container["memory_mib"] = scale_memory(container["memory_mib"], memory_factor)
                env = container.get("env")
                if isinstance(env, dict):
                    for key, value in env.items():
                        if isinstance(value, str) and value in self.address_map:
                            env[key] = self.address(
                                value, f"{rel}: container {container.get('name')} env {key}"
                            )
        return doc

    # -- volumes -------------------------------------------------------------------------------------

    def _volume_entry(self, rel: str, kind: str, mode: int) -> None:
        parts = rel.split("/")
        app, vol = parts[1], parts[2]
        component = f"volume:{app}/{vol}"
        if component not in self.volume_roots:
            raise LayoutError([f"{rel}: {component} is not a volume of the environment"])
        if len(parts) >= 5 and parts[3] == "files":
            root, files_rel = self.volume_roots[component]
            inner = "/".join(parts[4:])
            relpath = f"{files_rel}/{inner}"
            if kind == "symlink" and files_rel != f"volumes/{app}/{vol}/files":
                raise LayoutError(
                    [
                        f"{rel}: a symlink is restored only under volumes/{app}/{vol}/files/ of its pool; "
                        f"the plan puts the volume at {files_rel}"
                    ]
                )
            pool = self.pools[self.paths[component].pool]
            safe_join(pool.root, *relpath.split("/"))  # never outside the pool root
            self.emit([root], relpath, rel, mode, kind)
            return
        root = self._component_root("application", app, rel)
        new = old = None
        if parts[3:] == ["volume.yaml"]:
            old = self.doc(rel)
            doc = copy.deepcopy(_mapping(old, rel))
            entry = self.paths[component]
            old_class = doc.get("storage_class")
            doc["source_path"] = entry.new_path
            doc["storage_class"] = entry.storage_class
            self.storage_path(entry, str(old_class))
            new = doc
        self.emit([root], rel, rel, mode, kind, new, old)


def scale_cpu(value: float, factor: float) -> float | int:
    """A container's CPU request × the VM's factor, to a thousandth of a core (an int when whole)."""
    scaled = max(0.001, round(value * factor, 3))
    return int(scaled) if float(scaled).is_integer() else scaled


def scale_memory(value: float, factor: float) -> int:
    """A container's memory request × the VM's factor, in whole MiB."""
    return max(1, round(value * factor))


def _matches(
    a: Adaptation,
    subject: str | None,
    prefix: str | None,
    old: str | None,
    new: str | None,
    new_prefix: str | None,
) -> bool:
    return (
        (subject is None or a.subject == subject)
        and (prefix is None or a.subject == prefix or a.subject.startswith(prefix + " "))
        and (old is None or a.old == old)
        and (new is None or a.new == new)
        and (new_prefix is None or a.new.startswith(new_prefix))
    )


def _mapping(value: Any, rel: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LayoutError([f"{rel}: must be a mapping, found {type(value).__name__}"])
    return value


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _cidr(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        return text
