"""Read an environment state folder into the recovery index: components, dependencies, hardware.

The folder's YAML and JSON files are read with safe loaders and checked for the fields the index
needs; every cross-reference (an orchestrator's VM, an application's orchestrator, a dependency)
must resolve, and the dependencies must form a DAG. Anything missing or malformed becomes an
EnvironmentStateError naming the file. The index's `files` list is left empty: the backup
writer fills it.
Kept whole: one reader class walks the folder; the small field readers below it serve only it.
"""

from __future__ import annotations

import json
import os
import stat
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

import yaml

from omni_recovery.backupset.index_db import (
    PRIORITIES,
    STRENGTHS,
    Component,
    Dependency,
    HardwareNode,
    RecoveryIndex,
)
from omni_recovery.envstate.model import place
from omni_recovery.errors import EnvironmentStateError
from omni_recovery.yaml_text import load_yaml

STORAGE_SERVICE = "service:storage"
AUTH_SERVICE = "service:auth"
NODE_ROLES = ("director", "compute", "storage")


def read_topology(root: Path) -> RecoveryIndex:
    """Read the environment folder at `root` into a RecoveryIndex (files left empty)."""
    root = Path(root)
    if not root.is_dir():
        raise EnvironmentStateError(f"{root}: not an environment folder (no such directory)")
    reader = _Reader(root)
    return reader.read()


class _Reader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.components: list[Component] = []
        self.dependencies: list[Dependency] = []
        self._known_dependencies: set[Dependency] = set()  # the same, to look up (not a list scan)
        self.ids: set[str] = set()

    # -- loading -------------------------------------------------------------------------

    def yaml(self, rel: str) -> dict[str, Any]:
        text = self._text(rel)
        try:
            data = load_yaml(text)
        except yaml.YAMLError as exc:
            raise EnvironmentStateError(f"{rel}: not valid YAML: {exc}") from exc
        return _mapping(data, rel, "the document")

    def json(self, rel: str) -> dict[str, Any]:
        text = self._text(rel)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EnvironmentStateError(f"{rel}: not valid JSON: {exc}") from exc
        return _mapping(data, rel, "the document")

    def _text(self, rel: str) -> str:
        path = self.root / rel
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise EnvironmentStateError(f"{rel}: missing") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise EnvironmentStateError(f"{rel}: cannot be read: {exc}") from exc

    def folders(self, rel: str) -> list[str]:
        """Names of the sub-folders of `rel` (sorted); a missing folder has none."""
        path = self.root / rel
        if not path.exists() and not path.is_symlink():
            return []
        if path.is_symlink() or not path.is_dir():
            raise EnvironmentStateError(f"{rel}: must be a folder")
        names = []
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            if not entry.is_dir(follow_symlinks=False):
                raise EnvironmentStateError(f"{rel}/{entry.name}: only folders are expected in {rel}/")
            names.append(entry.name)
        return names

    # -- building ------------------------------------------------------------------------

    def add(
        self,
        kind: str,
        name: str,
        relpath: str,
        *,
        parent: str | None = None,
        priority: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> str:
        cid = f"{kind}:{name}"
        if cid in self.ids:
            raise EnvironmentStateError(f"{relpath}: component {cid} is defined twice")
        self.ids.add(cid)
        self.components.append(
            Component(cid, kind, name, parent, priority, place(relpath).iso_kind, attributes or {})
        )
        return cid

    def depend(self, cid: str, on: str, strength: str = "hard") -> None:
        dep = Dependency(cid, on, strength)
        if dep not in self._known_dependencies:
            self._known_dependencies.add(dep)
            self.dependencies.append(dep)

    def read(self) -> RecoveryIndex:
        env = self.yaml("environment.yaml")
        self.add(
            "system",
            "core",
            "environment.yaml",
            attributes={
                "environment": _str(env, "name", "environment.yaml"),
                "domain": _str(env, "domain", "environment.yaml"),
                "omnicloud_version": str(env.get("omnicloud_version", "")),
            },
        )
        subnets = _mapping(
            self.yaml("network/subnets.yaml").get("subnets"), "network/subnets.yaml", "subnets"
        )
        self.add(
            "network",
            "config",
            "network/subnets.yaml",
            attributes={
                "subnets": {
                    name: _str(_mapping(s, "network/subnets.yaml", name), "cidr", "network/subnets.yaml")
                    for name, s in subnets.items()
                }
            },
        )
        hardware = self.read_nodes()
        vm_hosts = self.read_directors()
        self.read_orchestrators(vm_hosts)
        self.read_services(vm_hosts)
        apps = self.read_applications()
        self.read_volumes(apps)
        self.check_references()
        self.check_acyclic()
        return RecoveryIndex(
            components=self.components, dependencies=self.dependencies, files=[], hardware=hardware
        )

    def read_nodes(self) -> list[HardwareNode]:
        path = self.root / "nodes"
        if not path.is_dir():
            return []
        nodes: list[HardwareNode] = []
        seen: set[str] = set()
        for name in sorted(entry.name for entry in os.scandir(path)):
            rel = f"nodes/{name}"
            if not name.endswith(".yaml"):
                raise EnvironmentStateError(f"{rel}: nodes/ holds only {{node}}.yaml files")
            data = self.yaml(rel)
            node_id = _str(data, "hostname", rel)
            if node_id in seen:
                raise EnvironmentStateError(f"{rel}: hostname {node_id} is already used by another node")
            seen.add(node_id)
            nodes.append(
                HardwareNode(
                    node_id=node_id,
                    role=_choice(data, "role", NODE_ROLES, rel),
                    cpu_cores=_int(data, "cpu_cores", rel),
                    memory_mib=_int(data, "memory_mib", rel),
                    disks=_list_of_mappings(data, "disks", rel),
                    nics=_list_of_mappings(data, "nics", rel),
                )
            )
        return nodes

    def read_directors(self) -> dict[str, str]:
        """Add every director; return vm_id -> director id for all VMs in their state.json."""
        vm_hosts: dict[str, str] = {}
        for did in self.folders("directors"):
            rel = f"directors/{did}/config.yaml"
            config = self.yaml(rel)
            _same(config, "director_id", did, rel)
            self.add(
                "director",
                did,
                rel,
                attributes={"node": _str(config, "node", rel), "ring_id": _str(config, "ring_id", rel)},
            )
            state_rel = f"directors/{did}/state.json"
            state = self.json(state_rel)
            vms = state.get("vms")
            if not isinstance(vms, list):
                raise EnvironmentStateError(f"{state_rel}: vms must be a list")
            for vm in vms:
                vm_id = _str(_mapping(vm, state_rel, "a VM"), "vm_id", state_rel)
                if vm_id in vm_hosts:
                    raise EnvironmentStateError(
                        f"{state_rel}: VM {vm_id} is also defined by director {vm_hosts[vm_id]}"
                    )
                vm_hosts[vm_id] = did
        return vm_hosts

    def read_orchestrators(self, vm_hosts: dict[str, str]) -> None:
        for oid in self.folders("orchestrators"):
            rel = f"orchestrators/{oid}/config.yaml"
            config = self.yaml(rel)
            _same(config, "orchestrator_id", oid, rel)
            vm_id = _str(config, "vm_id", rel)
            host = vm_hosts.get(vm_id)
            if host is None:
                raise EnvironmentStateError(f"{rel}: VM {vm_id} is in no director's state.json")
            declared = config.get("director")
            if declared is not None and declared != host:
                raise EnvironmentStateError(
                    f"{rel}: director is {declared!r} but VM {vm_id} is in director {host}'s state.json"
                )
            cid = self.add(
                "orchestrator",
                oid,
                rel,
                parent=f"director:{host}",
                attributes={"cluster_id": _str(config, "cluster_id", rel), "vm_id": vm_id},
            )
            self.depend(cid, f"director:{host}")

    def read_services(self, vm_hosts: dict[str, str]) -> None:
        names = self.folders("services")
        for name in names:
            rel = f"services/{name}/service.yaml"
            data = self.yaml(rel)
            _same(data, "name", name, rel)
            attributes: dict[str, Any] = {
                "category": _choice(data, "category", ("storage", "core"), rel),
                "role": _str(data, "role", rel),
            }
            vm = data.get("vm")
            if vm is not None:
                if vm not in vm_hosts:
                    raise EnvironmentStateError(f"{rel}: VM {vm!r} is in no director's state.json")
                attributes["vm"] = vm
                attributes["director"] = vm_hosts[vm]
            cid = self.add("service", name, rel, attributes=attributes)
            if cid != STORAGE_SERVICE and "storage" in names:
                self.depend(cid, STORAGE_SERVICE)
            for other in _str_list(data, "depends_on", rel):
                if other not in names:
                    raise EnvironmentStateError(f"{rel}: depends on service {other!r}, which does not exist")
                self.depend(cid, f"service:{other}")

    def read_applications(self) -> list[str]:
        apps = self.folders("applications")
        for app in apps:
            rel = f"applications/{app}/app.yaml"
            data = self.yaml(rel)
            _same(data, "name", app, rel)
            orchestrator = _str(data, "orchestrator", rel)
            parent = f"orchestrator:{orchestrator}"
            if parent not in self.ids:
                raise EnvironmentStateError(f"{rel}: orchestrator {orchestrator!r} does not exist")
            containers = _list_of_mappings(data, "containers", rel)
            cid = self.add(
                "application",
                app,
                rel,
                parent=parent,
                priority=_choice(data, "priority", PRIORITIES, rel),
                attributes={"containers": [str(c.get("name")) for c in containers]},
            )
            self.depend(cid, parent)
            if AUTH_SERVICE in self.ids:
                self.depend(cid, AUTH_SERVICE, "soft")
            for dep in _list_of_mappings(data, "depends_on", rel, required=False):
                other = _str(dep, "app", rel)
                if other not in apps:
                    raise EnvironmentStateError(
                        f"{rel}: depends on application {other!r}, which does not exist"
                    )
                self.depend(cid, f"application:{other}", _choice(dep, "strength", STRENGTHS, rel))
        return apps

    def read_volumes(self, apps: list[str]) -> None:
        for app in self.folders("volumes"):
            if app not in apps:
                raise EnvironmentStateError(f"volumes/{app}: application {app!r} does not exist")
            for vol in self.folders(f"volumes/{app}"):
                rel = f"volumes/{app}/{vol}/volume.yaml"
                data = self.yaml(rel)
                _same(data, "name", vol, rel)
                if data.get("app", app) != app:
                    raise EnvironmentStateError(f"{rel}: app is {data.get('app')!r}, not {app!r}")
                total, count = _tree_bytes(self.root / "volumes" / app / vol / "files")
                cid = self.add(
                    "volume",
                    f"{app}/{vol}",
                    rel,
                    parent=f"application:{app}",
                    attributes={
                        "size_gib": _number(data, "size_gib", rel),
                        "storage_class": _str(data, "storage_class", rel),
                        "mount_path": _str(data, "mount_path", rel),
                        "source_path": str(data.get("source_path", "")),
                        "bytes": total,
                        "files": count,
                    },
                )
                self.depend(f"application:{app}", cid)

    # -- checks --------------------------------------------------------------------------

    def check_references(self) -> None:
        for dep in self.dependencies:
            if dep.depends_on_id not in self.ids:
                raise EnvironmentStateError(
                    f"{dep.component_id} depends on {dep.depends_on_id}, which does not exist"
                )

    def check_acyclic(self) -> None:
        edges: dict[str, list[str]] = {}
        for dep in self.dependencies:
            edges.setdefault(dep.component_id, []).append(dep.depends_on_id)
        try:
            TopologicalSorter(edges).prepare()
        except CycleError as exc:
            cycle = list(reversed(exc.args[1]))
            raise EnvironmentStateError(f"dependency cycle: {' -> '.join(cycle)}") from exc


def _tree_bytes(folder: Path) -> tuple[int, int]:
    """Total size and count of the regular files under `folder`, never following symlinks."""
    total = count = 0
    if not folder.is_dir() or folder.is_symlink():
        return 0, 0
    pending = [str(folder)]
    while pending:
        with os.scandir(pending.pop()) as listing:
            for entry in listing:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    pending.append(entry.path)
                elif stat.S_ISREG(st.st_mode):
                    total += st.st_size
                    count += 1
    return total, count


def _mapping(value: Any, rel: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EnvironmentStateError(f"{rel}: {what} must be a mapping, found {type(value).__name__}")
    return value


def _str(data: dict[str, Any], key: str, rel: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise EnvironmentStateError(f"{rel}: {key} must be non-empty text, found {value!r}")
    return value


def _same(data: dict[str, Any], key: str, expected: str, rel: str) -> None:
    value = _str(data, key, rel)
    if value != expected:
        raise EnvironmentStateError(f"{rel}: {key} is {value!r} but the folder is named {expected!r}")


def _int(data: dict[str, Any], key: str, rel: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise EnvironmentStateError(f"{rel}: {key} must be a non-negative integer, found {value!r}")
    return value


def _number(data: dict[str, Any], key: str, rel: str) -> int | float:
    value = data.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise EnvironmentStateError(f"{rel}: {key} must be a non-negative number, found {value!r}")
    return value


def _choice(data: dict[str, Any], key: str, choices: tuple[str, ...], rel: str) -> str:
    value = data.get(key)
    if value not in choices:
        raise EnvironmentStateError(f"{rel}: {key} must be one of {', '.join(choices)}, found {value!r}")
    return str(value)


def _str_list(data: dict[str, Any], key: str, rel: str) -> list[str]:
    value = data.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise EnvironmentStateError(f"{rel}: {key} must be a list of names, found {value!r}")
    return value


def _list_of_mappings(
    data: dict[str, Any], key: str, rel: str, *, required: bool = True
) -> list[dict[str, Any]]:
    value = data.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise EnvironmentStateError(f"{rel}: {key} must be a list of mappings, found {value!r}")
    return value
