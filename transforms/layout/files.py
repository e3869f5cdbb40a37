"""What a restore writes: `TargetFile` and `TargetLayout`, the roots' names, the paths never restored,
and how a rewritten document is serialised (deterministically: YAML with key order kept, JSON with a
two-space indent) and parsed.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from omni_recovery.yaml_text import load_yaml, safe_dump
from transforms.adapt.changes import DocumentChange, LayoutError
from transforms.adapt.vocabulary import Adaptation

NOT_RESTORED: tuple[str, ...] = ("keys/ca.key",)
"""Environment paths (fnmatch, `*` within one segment) never restored: the old CA's private key (a new CA
is issued at restore time). Other key material, such as service-account keys, is restored."""

OLD_CA_CERT = "keys/old-ca.crt"
"""Where the backup's CA certificate is restored: `keys/ca.crt` is the new CA's."""

RESTORED_EVENT = "director.restored"
# Everything else below data/ (environment.yaml, recovery/, keys/, network/, and what another writer
# adds, e.g. system/...) is shared: it goes to every Director node.
COMPONENT_TOP = ("nodes", "directors", "orchestrators", "services", "applications", "volumes")


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
    order, then any synthesised for an edited plan or for values the plan does not name); the
    environment files deliberately not restored, with why (old nodes the plan retires); and every
    value changed in a document (by document and JSON pointer). The old private keys (NOT_RESTORED)
    appear nowhere."""

    files: tuple[TargetFile, ...]
    volume_roots: dict[str, tuple[str, str]]
    adaptations_applied: tuple[Adaptation, ...]
    dropped: tuple[tuple[str, str], ...] = ()
    changes: tuple[DocumentChange, ...] = ()

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


def scale_cpu(value: float, factor: float) -> float | int:
    """A container's CPU request × the VM's factor, to a thousandth of a core (an int when whole)."""
    scaled = max(0.001, round(value * factor, 3))
    return int(scaled) if float(scaled).is_integer() else scaled


def scale_memory(value: float, factor: float) -> int:
    """A container's memory request × the VM's factor, in whole MiB."""
    return max(1, round(value * factor))


def _mapping(value: Any, rel: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LayoutError([f"{rel}: must be a mapping, found {type(value).__name__}"])
    return value


def _listed(value: Any) -> list[Any]:
    """A list as a list, a mapping as its values (a list keyed by name), nothing as []."""
    if isinstance(value, dict):
        return list(value.values())
    return list(value) if isinstance(value, list) else []


def is_config_document(rel: str) -> bool:
    """A configuration document adapted by value: YAML or JSON outside an Orchestrator's table dump."""
    return rel.endswith((".yaml", ".yml", ".json")) and "/db/" not in rel


def parse_document(rel: str, raw: bytes) -> Any:
    """A YAML or JSON document's content; ValueError when it is neither."""
    try:
        text = raw.decode("utf-8")
        return json.loads(text) if rel.endswith(".json") else load_yaml(text)
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(str(exc)) from exc
