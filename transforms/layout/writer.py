"""The restore layout's writer: the builder's state, the adaptations it explains, the documents it reads.

`LayoutWriter` holds what `target_layout` builds from (the environment, its documents, the plan, the
inventory) and what it has built so far: the files, the files dropped, the document changes and the
adaptations they apply. It parses a document (`doc`), adapts its values by the plan's mappings once
(`adapted`), and writes a file under one or more roots (`emit`, `emit_adapted`, `emit_text`): copied
byte for byte when unchanged, else serialised anew. A change that the plan lists no adaptation for is
explained by one synthesised with EDITED_REASON. A document that must be rewritten and is missing or
does not parse raises LayoutError.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from omni_recovery.adapt.inventory import Inventory
from omni_recovery.backupset.layout import check_relative_path
from omni_recovery.envstate.model import component_of
from transforms.adapt.changes import DocumentChange, LayoutError
from transforms.adapt.values import ValueAdapter
from transforms.adapt.vocabulary import Adaptation
from transforms.documents import Environment
from transforms.layout.files import (
    TargetFile,
    _mapping,
    dump_json,
    dump_yaml,
    issued_paths,
    node_root,
    parse_document,
)
from transforms.layout.mappings import EDITED_REASON, PlanAdaptations, value_map
from transforms.plan import PathEntry, PlacementEntry, Plan

Rewriter = Callable[[dict[str, Any], str], Any]


@dataclass
class LayoutWriter:
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
