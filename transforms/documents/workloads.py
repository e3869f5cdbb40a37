"""Reading Orchestrators, core services, applications (with their dependencies) and volumes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omni_recovery.backupset.index_db import COMPONENT_KINDS, PRIORITIES
from transforms.documents.facts import (
    CPU_KEYS,
    MEMORY_KEYS,
    VOLUME_SIZE_KEYS,
    number,
    volume_fields,
    volume_mounts,
)
from transforms.documents.facts import containers as container_items
from transforms.documents.model import VM, Application, Container, Orchestrator, Service, Volume
from transforms.documents.sources import (
    _TARGET_KEYS,
    DEFAULT_GROUP,
    MisreadFact,
    _Files,
    _Index,
    _ip_text,
    _listed,
    _text,
    _yaml,
    item_places,
)


def _read_orchestrator(
    src: _Files,
    oid: str,
    rel: str,
    cfg: dict[str, Any],
    claims: dict[str, str],
    vms: tuple[VM, ...],
    index: _Index,
) -> Orchestrator:
    src.current = rel
    cid = f"orchestrator:{oid}"
    # without a VM of its own, the id only names the Orchestrator's VM in the plan
    vm_id = claims.get(cid, f"{oid}-vm")
    host = next((v.director for v in vms if v.vm_id == vm_id), str(cfg.get("director", "")))
    address = cfg.get("address")
    return Orchestrator(
        oid,
        _text(cfg, "cluster_id", "cluster") or index.attribute(cid, "cluster_id") or DEFAULT_GROUP,
        vm_id,
        host,
        None if address is None else _ip_text(address) or str(address),
    )


def _read_service(
    src: _Files, name: str, rel: str, doc: dict[str, Any], claims: dict[str, str], index: _Index
) -> Service:
    src.current = rel
    cid = f"service:{name}"
    return Service(
        name=name,
        category=_text(doc, "category") or index.attribute(cid, "category") or "core",
        role=_text(doc, "role") or index.attribute(cid, "role") or name,
        vm_id=claims.get(cid),
        depends_on=tuple(target for target, _ in dependencies(doc.get("depends_on"))),
    )


def _read_app(
    src: _Files, name: str, rel: str, doc: dict[str, Any], claims: dict[str, str], index: _Index
) -> Application:
    src.current = rel
    cid = f"application:{name}"
    return Application(
        name=name,
        priority=_priority(_text(doc, "priority"), index.priority(cid)),
        orchestrator=_text(doc, "orchestrator") or index.parent_name(cid, "orchestrator") or "",
        vm_id=claims.get(cid),
        containers=_containers(doc),
        volumes=tuple(name for name, _ in volume_mounts(doc)),
        depends_on=_app_dependencies(name, doc.get("depends_on"), index),
    )


def _containers(app: Mapping[str, Any]) -> tuple[Container, ...]:
    found = []
    for c, place in zip(container_items(app), item_places(app.get("containers")), strict=True):
        try:
            found.append(_container(c))
        except MisreadFact as exc:
            raise exc.under("containers", *place) from None
    return tuple(found)


def _container(c: Mapping[str, Any]) -> Container:
    return Container(
        name=_text(c, "name") or "",
        cpu=number(c, *CPU_KEYS) or 0,
        memory_mib=int(number(c, *MEMORY_KEYS) or 0),
        replicas=int(_replicas(c)),
    )


def _replicas(container: Mapping[str, Any]) -> float:
    replicas = number(container, "replicas", "count", "instances")
    return 1 if replicas is None else replicas


def _priority(*candidates: str | None) -> str:
    return next((p.lower() for p in candidates if p and p.lower() in PRIORITIES), "standard")


def dependencies(raw: Any) -> list[tuple[str, str]]:
    """(name, hard|soft) of each `depends_on` item: a plain name (hard), {app|service|name: x, strength: s}
    (ours: {app, strength}), or {x: s}; a `kind:` prefix is dropped, an item naming nothing skipped.
    The one reading of depends_on: the plan and the catalog both use it."""
    if isinstance(raw, Mapping) and not any(k in raw for k in _TARGET_KEYS):
        raw = [{k: v} for k, v in raw.items()]
    found = []
    for item in _listed(raw):
        strength: str | None = None
        if isinstance(item, Mapping):
            target, strength = _text(item, *_TARGET_KEYS), _text(item, "strength")
            if target is None and len(item) == 1 and "strength" not in item:
                key, value = next(iter(item.items()))
                target, strength = str(key), value if isinstance(value, str) else None
        else:
            target = _text({"x": item}, "x")
        if target:
            kind, sep, rest = target.partition(":")
            found.append((rest if sep and kind in COMPONENT_KINDS else target, _strength(strength)))
    return found


def _strength(value: str | None) -> str:
    return "soft" if value is not None and value.strip().lower() == "soft" else "hard"


def _app_dependencies(name: str, raw: Any, index: _Index) -> tuple[tuple[str, str], ...]:
    """The application's dependencies on others: app.yaml's, with the index's strength where the index
    lists them (it is authoritative) and what only the index lists added."""
    deps = dict(dependencies(raw))
    cid = f"application:{name}"
    for dep in index.dependencies_of(cid):
        if dep.depends_on_id.startswith("application:"):
            deps[dep.depends_on_id.partition(":")[2]] = dep.strength
    return tuple(deps.items())


def _read_volumes(src: _Files) -> tuple[Volume, ...]:
    volumes = []
    for app in src.names("volumes"):
        for vol in src.names(f"volumes/{app}"):
            doc = _yaml(src, f"volumes/{app}/{vol}/volume.yaml")
            facts = volume_fields(doc)
            volumes.append(
                Volume(
                    app=app,
                    name=vol,
                    size_gib=number(doc, *VOLUME_SIZE_KEYS) or 0,
                    storage_class=facts["storage_class"] or "",
                    mount_path=facts["mount_path"] or "",
                    source_path=facts["source_path"] or "",
                )
            )
    return tuple(volumes)
