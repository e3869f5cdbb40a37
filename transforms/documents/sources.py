"""Where the reader takes its facts from: the documents' texts, the recovery index, and the small
tolerant helpers every part of the reader uses to find a fact by meaning (`_text` takes the first of
several field names, `_listed` a list or a single value, `document_items` a list, a wrapper or a
mapping keyed by name). A document that does not parse raises EnvironmentStateError naming it.
"""

from __future__ import annotations

import ipaddress
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from omni_recovery.backupset.index_db import Component, Dependency, HardwareNode
from omni_recovery.errors import EnvironmentStateError
from omni_recovery.yaml_text import load_yaml

# ring and cluster of Directors and Orchestrators whose files name none
DEFAULT_GROUP = "default"
_KIND_ROLE = {"orchestrator": "orchestrator", "service": "service", "application": "app"}
_ROLE_KIND = {
    "orchestrator": "orchestrator",
    "service": "service",
    "app": "application",
    "application": "application",
}
_NAME_PREFIXES = {
    "orchestrator": ("orch", "orchestrator"),
    "service": ("svc", "service"),
    "application": ("app", "application"),
}
_VM_KEYS = {"orchestrator": ("vm_id", "vm"), "service": ("vm", "vm_id"), "application": ("vm", "vm_id")}
_TARGET_KEYS = ("app", "application", "service", "name", "component")


class _Index:
    """The recovery index as the reading needs it: attributes, parents and priorities of components,
    dependencies (authoritative for their strength) and hardware."""

    def __init__(
        self,
        components: tuple[Component, ...],
        dependencies: tuple[Dependency, ...],
        hardware: tuple[HardwareNode, ...],
    ) -> None:
        self.components = components
        self.dependencies = dependencies
        self.hardware = hardware
        self._by_id = {c.component_id: c for c in components}
        self._dependencies_of: dict[str, list[Dependency]] = defaultdict(list)
        for dependency in dependencies:
            self._dependencies_of[dependency.component_id].append(dependency)

    def dependencies_of(self, component_id: str) -> list[Dependency]:
        """What the index says `component_id` depends on (looked up: one pass over the index per
        component would grow with the square of the components)."""
        return self._dependencies_of.get(component_id, [])

    def attribute(self, component_id: str, *keys: str) -> str | None:
        component = self._by_id.get(component_id)
        if component is None or not isinstance(component.attributes, Mapping):
            return None
        return _text(component.attributes, *keys)

    def parent_name(self, component_id: str, kind: str) -> str | None:
        component = self._by_id.get(component_id)
        parent = component.parent_id if component else None
        return parent.partition(":")[2] if parent and parent.startswith(f"{kind}:") else None

    def priority(self, component_id: str) -> str | None:
        component = self._by_id.get(component_id)
        return component.priority if component else None


class _Files:
    """The environment's documents by environment path; `current` is the one read (or parsed) last."""

    current: str = "the environment"

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = files

    def text(self, rel: str) -> str:
        self.current = rel
        if rel not in self.files:
            raise EnvironmentStateError(f"{rel}: missing")
        return self.files[rel]

    def exists(self, rel: str) -> bool:
        return rel in self.files

    def names(self, rel: str, suffix: str = "") -> list[str]:
        """Sorted names directly under folder `rel`: sub-folders, or files ending in `suffix` (stripped)."""
        prefix = rel.rstrip("/") + "/"
        found = set()
        for path in self.files:
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :].split("/")
            if suffix and len(rest) == 1 and rest[0].endswith(suffix):
                found.add(rest[0][: -len(suffix)])
            elif not suffix and len(rest) > 1:
                found.add(rest[0])
        return sorted(found)


@dataclass(frozen=True)
class _Workloads:
    """The Orchestrator, service and application documents, by id, with the path each was read from."""

    orchestrators: dict[str, tuple[str, dict[str, Any]]]
    services: dict[str, tuple[str, dict[str, Any]]]
    applications: dict[str, tuple[str, dict[str, Any]]]

    @classmethod
    def read(cls, src: _Files) -> _Workloads:
        def docs(folder: str, file: str) -> dict[str, tuple[str, dict[str, Any]]]:
            paths = {n: f"{folder}/{n}/{file}" for n in src.names(folder)}
            return {n: (rel, _yaml(src, rel)) for n, rel in paths.items()}

        return cls(
            docs("orchestrators", "config.yaml"),
            docs("services", "service.yaml"),
            docs("applications", "app.yaml"),
        )

    def documents(self) -> list[tuple[str, dict[str, Any]]]:
        """(component id, document) of every Orchestrator, then service, then application."""
        groups = (
            ("orchestrator", self.orchestrators),
            ("service", self.services),
            ("application", self.applications),
        )
        return [(f"{kind}:{n}", doc) for kind, docs in groups for n, (_, doc) in docs.items()]


def _document(src: _Files, rel: str) -> Any:
    try:
        return load_yaml(src.text(rel))
    except yaml.YAMLError as exc:
        raise EnvironmentStateError(f"{rel}: not valid YAML: {exc}") from exc


def _yaml(src: _Files, rel: str) -> dict[str, Any]:
    return _map(_document(src, rel), rel)


def _optional(src: _Files, rel: str) -> dict[str, Any]:
    return _yaml(src, rel) if src.exists(rel) else {}


def _listing(src: _Files, rel: str, key: str) -> list[Any]:
    """The items of an optional document (see `document_items`)."""
    return document_items(_document(src, rel), key) if src.exists(rel) else []


def document_items(doc: Any, key: str) -> list[Any]:
    """The items of a document: its `key` list (ours), or the document itself when a list; a mapping
    keyed by name gives its values as objects named after their key (a bare value as `value`). The
    catalog reads them so too."""
    raw = doc.get(key, doc) if isinstance(doc, Mapping) else doc
    if isinstance(raw, Mapping):
        return [
            {"name": k, **v} if isinstance(v, Mapping) else {"name": k, "value": v} for k, v in raw.items()
        ]
    return _listed(raw)


def first_of(doc: Mapping[str, Any], *keys: str) -> Any:
    """The value of the first of `keys` that `doc` has (field names another writer may use)."""
    return next((doc[k] for k in keys if k in doc), None)


def _json(src: _Files, rel: str) -> dict[str, Any]:
    try:
        data = json.loads(src.text(rel))
    except json.JSONDecodeError as exc:
        raise EnvironmentStateError(f"{rel}: not valid JSON: {exc}") from exc
    return _map(data, rel)


def _map(value: Any, rel: str, what: str = "the document") -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise EnvironmentStateError(f"{rel}: {what} must be a mapping, found {type(value).__name__}")
    return dict(value)


class MisreadFact(ValueError):
    """A fact a document gives in a form the reader cannot use, at `pointer` (RFC 6901) inside it."""

    def __init__(self, pointer: str, reason: str) -> None:
        super().__init__(reason)
        self.pointer = pointer

    def under(self, *segments: object) -> MisreadFact:
        """The same fault seen from the document holding this part of it at `segments`."""
        return MisreadFact(json_pointer(*segments) + self.pointer, str(self))


def json_pointer(*segments: object) -> str:
    """The RFC 6901 pointer of `segments` ("" is the whole document)."""
    return "".join("/" + pointer_token(s) for s in segments)


def pointer_token(key: object) -> str:
    """A mapping key as one JSON pointer token (`~` → `~0`, `/` → `~1`)."""
    return str(key).replace("~", "~0").replace("/", "~1")


def item_places(value: Any) -> list[tuple[object, ...]]:
    """Where each item `_listed` (or `named_items`) gives of `value` sits in it: its key in a mapping,
    its index in a list, nothing for a single value."""
    if isinstance(value, Mapping):
        return [(key,) for key in value]
    if isinstance(value, list | tuple):
        return [(i,) for i in range(len(value))]
    return [()] if value is not None else []


def _listed(value: Any) -> list[Any]:
    """A list as a list, nothing as [], anything else as a list of one."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in _listed(value) if isinstance(v, Mapping)]


def _text(doc: Mapping[str, Any], *keys: str) -> str | None:
    """The first of `keys` that `doc` sets to a non-empty scalar, as text."""
    for key in keys:
        value = doc.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def _num(doc: Mapping[str, Any], key: str, default: float = 0) -> float:
    value = doc.get(key)
    return default if value is None else float(value)


def _ip_text(value: Any) -> str | None:
    """An IP address given as text, without a /prefix; None for anything else."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip().partition("/")[0]
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None
    return text
