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

This module routes each entry of the environment to its roots and rewrites components and volumes;
layout/writer.py holds the builder's state and writes the files, layout/directors.py rewrites the node
and Director documents. What can go wrong: a plan that does not fit the environment or the inventory
(layout/checks.py), a document that must be rewritten and is missing or not a mapping, or two files on
one path: LayoutError lists every problem.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from omni_recovery.adapt.inventory import Inventory
from omni_recovery.envstate.model import place, volume_files_root
from omni_recovery.errors import RecoveryError
from transforms.adapt.changes import DocumentChange, LayoutError
from transforms.adapt.storage_paths import safe_join
from transforms.adapt.vocabulary import Adaptation
from transforms.documents import Environment
from transforms.documents.held import SetDocuments
from transforms.layout.checks import reference_problems, volume_roots
from transforms.layout.directors import DirectorDocuments
from transforms.layout.files import (
    COMPONENT_TOP,
    NOT_RESTORED,
    OLD_CA_CERT,
    RESTORED_EVENT,
    TargetFile,
    TargetLayout,
    _listed,
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
from transforms.layout.mappings import EDITED_REASON
from transforms.layout.writer import Rewriter
from transforms.plan import PlacementEntry, Plan

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


class _Builder(DirectorDocuments):
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
        """The plan's adaptations in plan order, then the synthesised ones (and the warnings for ambiguous
        old storage paths left unchanged), sorted."""
        applied = {**self.applied, **dict.fromkeys(self.adapter.left.values())}
        listed = [a for a in dict.fromkeys(self.plan.adaptations) if a in applied]
        known = set(self.plan.adaptations)
        extra = sorted(
            (a for a in applied if a not in known), key=lambda a: (a.kind, a.subject, a.old, a.new)
        )
        return (*listed, *extra)

    # -- one entry of the environment ----------------------------------------------------------------

    def _entry(self, rel: str, kind: str, mode: int) -> None:
        parts = rel.split("/")
        head = parts[0]
        if kind == "dir" and volume_files_root(rel) is None:
            return  # another writer's entry for a folder outside a volume: made for the files it holds
        if head in COMPONENT_TOP:
            place(rel)  # refuses paths these folders cannot hold
        if head == "nodes":
            self.node_file(rel, mode)
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
                "config.yaml": self.director_config,
                "state.json": self.director_state,
                "hardware.yaml": self.director_hardware,
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
