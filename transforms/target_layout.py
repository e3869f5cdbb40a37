"""What lands on each target root after a restore: the old environment's files, placed and adapted.

Pure, no Dagster and no I/O: `target_layout(environment, documents, plan, inventory, env_files=...)`
says for every file of the old environment under which root it goes (`node:<inventory node>` or
`pool:<storage pool>`), at which path, and whether its stored bytes are copied (`source`) or it is a
document written anew (`content`). Where things go is in docs/restore-layout.md: a Director's files to
its node, a component's to the node of its VM, volume trees to their pool, shared documents to every
Director node, the old CA key nowhere; the backup's `keys/ca.crt` becomes `keys/old-ca.crt` (the new
CA takes `keys/ca.crt`), and a backed-up file at another path the new certificates take is dropped.

Every YAML or JSON document is adapted by value (transforms/adapt/values.py: the plan's subnets,
addresses, storage paths, MACs and node names, wherever they appear); on top of that only what is
structure: VMs regrouped into their new Director's `state.json` (with a `director.restored` history
entry), CPU and memory scaled, a volume's path and class, the new nodes' hardware documents. Each
changed value is a DocumentChange, each explained by an adaptation of the plan (or, for a plan edited
by hand, one synthesised with EDITED_REASON); a document without a change is copied byte for byte.

What can go wrong: a plan that does not fit the environment or the inventory (layout/checks.py), a
document that must be rewritten and is missing or not a mapping, or two files on one path: LayoutError
lists every problem.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from omni_recovery.adapt.inventory import Inventory, InventoryNode
from omni_recovery.backupset.layout import check_relative_path
from omni_recovery.envstate.model import component_of, place, volume_files_root
from omni_recovery.errors import RecoveryError
from transforms.adapt.changes import DocumentChange, LayoutError
from transforms.adapt.storage_paths import safe_join
from transforms.adapt.values import ValueAdapter
from transforms.adapt.vocabulary import Adaptation
from transforms.documents import (
    ADDRESS_KEYS,
    CPU_KEYS,
    MEMORY_KEYS,
    RING_PEER_KEYS,
    VM_ID_KEYS,
    Environment,
    field_of,
    first_of,
    named_items,
    text_of,
    vm_list_key,
)
from transforms.documents.held import SetDocuments
from transforms.layout.checks import reference_problems, volume_roots
from transforms.layout.files import (
    COMPONENT_TOP,
    NOT_RESTORED,
    OLD_CA_CERT,
    RESTORED_EVENT,
    TargetFile,
    TargetLayout,
    _listed,
    _mapping,
    dump_json,
    dump_yaml,
    is_config_document,
    is_restored,
    issued_paths,
    node_root,
    parse_document,
    pool_root,
    scale_cpu,
    scale_memory,
)
from transforms.layout.mappings import EDITED_REASON, PlanAdaptations, value_map
from transforms.plan import PathEntry, PlacementEntry, Plan

Rewriter = Callable[[dict[str, Any], str], Any]

__all__ = [
    "COMPONENT_TOP",
    "EDITED_REASON",
    "NOT_RESTORED",
    "OLD_CA_CERT",
    "RESTORED_EVENT",
    "DocumentChange",
    "LayoutError",
    "TargetFile",
    "TargetLayout",
    "dump_json",
    "dump_yaml",
    "is_config_document",
    "is_restored",
    "issued_paths",
    "node_root",
    "parse_document",
    "pool_root",
    "scale_cpu",
    "scale_memory",
    "target_layout",
]

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
    give the same bytes. Raises LayoutError listing every problem, each naming the ISO and the path in
    it when `documents` know them (`SetDocuments`).
    """
    try:
        return _Builder(environment, documents, plan, inventory, restored_at).build(list(env_files))
    except LayoutError as exc:
        if not isinstance(documents, SetDocuments):
            raise
        raise LayoutError(map(documents.naming_iso, exc.problems)) from exc


@dataclass
class _Builder:
    env: Environment
    documents: Mapping[str, bytes]
    plan: Plan
    inventory: Inventory
    restored_at: str | None
    problems: list[str] = field(default_factory=list)
    applied: dict[Adaptation, None] = field(default_factory=dict)
    changes: dict[tuple[str, str], DocumentChange] = field(default_factory=dict)
    files: list[TargetFile] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    volume_roots: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        plan, env = self.plan, self.env
        self.subnet_map = {s.name: s for s in plan.subnets}
        self.known = PlanAdaptations(plan.adaptations)
        self.value_map = value_map(plan, env, self.inventory, self.known)
        self.adapter = ValueAdapter(self.value_map)
        self._adapted: dict[str, Any] = {}
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
        problems = reference_problems(self.env, self.plan, self.inventory)
        if problems:
            raise LayoutError(problems)
        self.volume_roots = volume_roots(self.env, self.plan)
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
            changes=tuple(self.changes[k] for k in sorted(self.changes)),
        )

    def _applied_in_order(self) -> tuple[Adaptation, ...]:
        """The plan's adaptations in plan order, then the synthesised ones, sorted."""
        listed = [a for a in dict.fromkeys(self.plan.adaptations) if a in self.applied]
        known = set(self.plan.adaptations)
        extra = sorted(
            (a for a in self.applied if a not in known), key=lambda a: (a.kind, a.subject, a.old, a.new)
        )
        return (*listed, *extra)

    # -- adaptations ---------------------------------------------------------------------------------

    def explain(self, fallback: Adaptation, **criteria: str) -> None:
        """Record the plan's adaptation matching `criteria` (see PlanAdaptations.find), else `fallback`."""
        self.applied.setdefault(self.known.find(fallback, **criteria), None)

    def explain_all(self, kind: str, prefix: str) -> None:
        for a in self.known.all(kind, prefix):
            self.applied.setdefault(a, None)

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
        """The parsed document at `rel`, as stored."""
        raw = self.documents.get(rel)
        if raw is None:
            raise LayoutError([f"{rel}: not among the documents given (needed to rewrite it)"])
        try:
            return parse_document(rel, raw)
        except ValueError as exc:
            raise LayoutError([f"{rel}: cannot be read: {exc}"]) from exc

    def adapted(self, rel: str) -> Any:
        """The document at `rel` with the plan's mappings applied to every value (recorded once)."""
        if rel not in self._adapted:
            new, changes = self.adapter.document(rel, self.doc(rel))
            self._adapted[rel] = new
            self.record(changes)
        return copy.deepcopy(self._adapted[rel])

    def record(self, changes: Iterable[DocumentChange]) -> None:
        for change in changes:
            self.changes.setdefault((change.document, change.pointer), change)
            for a in change.adaptations:
                self.applied.setdefault(a, None)

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

    def emit_adapted(self, roots: list[str], rel: str, mode: int, rewrite: Rewriter | None = None) -> None:
        """A configuration document, its values adapted (then `rewrite` on it); copied when unchanged.
        A document that does not parse has its text adapted instead (unless it must be rewritten)."""
        if rel not in self.documents or rewrite is not None:
            old = self.doc(rel)
        else:
            try:
                old = parse_document(rel, self.documents[rel])
            except ValueError:
                self.emit_text(roots, rel, mode)
                return
        new = self.adapted(rel)
        if rewrite is not None:
            new = rewrite(_mapping(new, rel), rel)
        self.emit(roots, rel, rel, mode, "file", new, old)

    def emit_text(self, roots: list[str], rel: str, mode: int) -> None:
        try:
            text = self.documents[rel].decode("utf-8")
        except UnicodeDecodeError:
            self.emit(roots, rel, rel, mode)
            return
        new, used = self.adapter.text(text, rel)
        self.record([DocumentChange(rel, "", text, new, tuple(used))] if new != text else [])
        check_relative_path(rel)
        content = None if new == text else new.encode("utf-8")
        for root in roots:
            source = rel if content is None else None
            self.files.append(TargetFile(root, rel, source, content, mode, component_of(rel), rel, "file"))

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
        elif head == "volumes":
            self._volume_entry(rel, kind, mode)
        elif rel == "keys/ca.crt":
            self.emit(self.director_roots, OLD_CA_CERT, rel, mode)
        elif rel in self.issued:
            self.dropped.append((rel, "its path holds a certificate or key issued at restore time"))
        else:
            roots, rewrite = self._destination(rel, parts)
            if kind == "file" and is_config_document(rel) and (rewrite or rel in self.documents):
                self.emit_adapted(roots, rel, mode, rewrite)
            else:
                self.emit(roots, rel, rel, mode, kind)

    def _destination(self, rel: str, parts: list[str]) -> tuple[list[str], Rewriter | None]:
        """The roots a file goes to, and the structural rewrite its document gets (if any)."""
        head, name = parts[0], "/".join(parts[2:])
        if head not in COMPONENT_TOP:  # shared, also another writer's data/system/... files
            return self.director_roots, None
        if head == "directors":
            director = parts[1]
            if director not in self.director_node:
                raise LayoutError([f"{rel}: Director {director} is not in the plan"])
            rewrite = {
                "config.yaml": self._director_config,
                "state.json": self._director_state,
                "hardware.yaml": self._director_hardware,
            }.get(name)
            return [node_root(self.director_node[director])], rewrite
        kind = {"orchestrators": "orchestrator", "services": "service", "applications": "application"}[head]
        if f"{kind}:{parts[1]}" not in self.vm_owner:
            # Another writer's set need not say which VM runs what: copied to where the plan's step
            # runs (an application's Orchestrator, else the first Director).
            return [self._root_without_vm(kind, parts[1])], None
        placement = self._placement_of(f"{kind}:{parts[1]}", rel)
        rewrite = None
        if name in ("config.yaml", "service.yaml", "app.yaml"):
            rewrite = functools.partial(self._rewrite_component, head, placement)
        return [node_root(placement.node)], rewrite

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

    # -- nodes ---------------------------------------------------------------------------------------

    def _node_file(self, rel: str, mode: int) -> None:
        old = self.doc(rel)
        hostname = str(_mapping(old, rel).get("hostname", rel.rsplit("/", 1)[-1].removesuffix(".yaml")))
        new_name = self.new_of_old.get(hostname)
        if new_name is None:
            self.explain_all("node", f"node {hostname}")
            self.dropped.append(
                (rel, f"node {hostname} is retired by the plan (no inventory node left for it)")
            )
            return
        new = self._hardware(hostname, new_name, self.adapted(rel), old, rel)
        self.emit(self.director_roots, f"nodes/{new_name}.yaml", rel, mode, "file", new, old)

    def _hardware(self, old_name: str, new_name: str, adapted: Any, old: Any, rel: str) -> dict[str, Any]:
        """The new node's hardware document: the inventory's, with the old NICs' (adapted) addresses."""
        node: InventoryNode = self.inventory.node(new_name)
        self.explain(
            Adaptation("node", f"node {old_name}", old_name, new_name, EDITED_REASON),
            prefix=f"node {old_name}",
        )
        adapted, old = _mapping(adapted, rel), _mapping(old, rel)
        old_nics, new_nics = (named_items(first_of(doc, "nics", "interfaces")) for doc in (old, adapted))
        nics: list[dict[str, Any]] = []
        for i, (was, nic) in enumerate(zip(old_nics, new_nics, strict=True)):
            new_nic = node.nics[min(i, len(node.nics) - 1)] if node.nics else None
            nics.append(
                {
                    "name": new_nic.name if new_nic else nic.get("name"),
                    "mac": new_nic.mac if new_nic else None,
                    "ip": first_of(nic, *ADDRESS_KEYS),
                    "prefix": self._prefix(first_of(was, *ADDRESS_KEYS), nic.get("prefix")),
                    "gateway": nic.get("gateway"),
                    "vlan": nic.get("vlan"),
                }
            )
            self.explain_all("mac", f"node {old_name} {was.get('name')}")
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
            address = ipaddress.ip_address(str(ip).partition("/")[0])
        except ValueError:
            return prefix
        moved = next((s for s in self.value_map.subnets if address in s.old), None)
        return prefix if moved is None else moved.new.prefixlen

    # -- Directors -----------------------------------------------------------------------------------

    def _director_config(self, doc: dict[str, Any], rel: str) -> Any:
        peers = _listed(first_of(doc, *RING_PEER_KEYS))
        missing = [p for p in peers if p not in self.director_node]
        if missing:
            raise LayoutError(
                [f"{rel}: ring peer(s) {', '.join(map(str, missing))} have no node in the plan"]
            )
        for name, _ in self.env.director(rel.split("/")[1]).storage_paths:
            entry = self.paths[f"director:{rel.split('/')[1]}/{name}"]
            self.storage_path(entry, None)
        return doc

    def _director_state(self, doc: dict[str, Any], rel: str) -> Any:
        """The Director's VMs after placement, in the shape its state.json holds them (a list, or keyed
        by id, under the field it uses), each scaled in the fields it uses."""
        director = rel.split("/")[1]
        raw_vms: dict[str, tuple[str, dict[str, Any]]] = {}
        for d in sorted(self.director_node):
            state_rel = f"directors/{d}/state.json"
            state = _mapping(self.adapted(state_rel), state_rel)
            for key, vm in _keyed(state.get(vm_list_key(state))):
                vm_id = text_of({"vm_id": key, **vm} if key is not None else vm, *VM_ID_KEYS)
                raw_vms[str(vm_id)] = (d, vm)
        vms: dict[str, dict[str, Any]] = {}
        for model in self.env.vms:
            p = self.placements[model.vm_id]
            if p.director != director or model.vm_id not in raw_vms:
                continue
            old_director, vm = raw_vms[model.vm_id]
            self.placement_change(p, old_director)
            if p.cpu != model.cpu:
                vm[field_of(vm, CPU_KEYS)] = p.cpu
            if p.memory_mib != model.memory_mib:
                vm[field_of(vm, MEMORY_KEYS)] = p.memory_mib
            self.scaling_change(p, model.cpu, model.memory_mib)
            vms[model.vm_id] = vm
        list_key = vm_list_key(doc)
        if isinstance(doc.get(list_key), Mapping):
            doc[list_key] = vms
        else:  # a VM keyed by id elsewhere says its id here
            doc[list_key] = [vm if text_of(vm, *VM_ID_KEYS) else {"vm_id": i, **vm} for i, vm in vms.items()]
        history = list(_listed(doc.get("history")))
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

    def _director_hardware(self, doc: dict[str, Any], rel: str) -> Any:
        director = rel.split("/")[1]
        old = _mapping(self.doc(rel), rel)
        old_node = str(old.get("hostname", self.env.director(director).node))
        return self._hardware(old_node, self.director_node[director], doc, old, rel)

    # -- Orchestrators, services, applications ---------------------------------------------------------

    def _rewrite_component(self, head: str, placement: PlacementEntry, doc: dict[str, Any], rel: str) -> Any:
        model = self.env.vm(placement.vm_id)
        director = doc.get("director")
        if head in ("orchestrators", "services") and director is not None and director != placement.director:
            self.placement_change(placement, str(director))
            doc["director"] = placement.director
        if head == "applications":
            cpu_factor = placement.cpu / model.cpu if model.cpu else 1.0
            memory_factor = placement.memory_mib / model.memory_mib if model.memory_mib else 1.0
            if (cpu_factor, memory_factor) != (1.0, 1.0):
                self.scaling_change(placement, model.cpu, model.memory_mib)
            for container in _listed(doc.get("containers")):
                if not isinstance(container, dict):
                    continue
                if cpu_factor != 1.0 and isinstance(container.get("cpu"), int | float):
                    container["cpu"] = scale_cpu(container["cpu"], cpu_factor)
                if memory_factor != 1.0 and isinstance(container.get("memory_mib"), int | float):
                    container["memory_mib"] = scale_memory(container["memory_mib"], memory_factor)
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
        roots = [self._component_root("application", app, rel)]
        if parts[3:] == ["volume.yaml"] and kind == "file":
            self.emit_adapted(roots, rel, mode, functools.partial(self._volume_document, component))
        elif kind == "file" and is_config_document(rel) and rel in self.documents:
            self.emit_adapted(roots, rel, mode)
        else:
            self.emit(roots, rel, rel, mode, kind)

    def _volume_document(self, component: str, doc: dict[str, Any], rel: str) -> Any:
        entry = self.paths[component]
        old_class = doc.get("storage_class")
        doc["source_path"] = entry.new_path
        doc["storage_class"] = entry.storage_class
        self.storage_path(entry, str(old_class))
        return doc


def _keyed(raw: Any) -> list[tuple[Any, dict[str, Any]]]:
    """(key, item) of each object of a mapping keyed by name, or (None, item) of each in a list."""
    pairs = raw.items() if isinstance(raw, Mapping) else ((None, item) for item in _listed(raw))
    return [(key, item) for key, item in pairs if isinstance(item, dict)]
