"""The node and Director documents of a restore: rewritten for the nodes and placements of the plan.

A node's hardware document becomes the new node's: the inventory's CPU, memory, disks and NICs, with
the old NICs' addresses adapted (and the prefix of the subnet they moved to); a node the plan retires
is dropped. A Director's `config.yaml` keeps its ring peers, which must all have a node in the plan;
its `state.json` holds the VMs the plan places on it (in the shape the old one held them: a list, or
keyed by id), each scaled, plus a `director.restored` history entry; its `hardware.yaml` is its new
node's. What is missing or not a mapping raises LayoutError.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from omni_recovery.adapt.inventory import InventoryNode
from transforms.adapt.changes import LayoutError
from transforms.adapt.vocabulary import Adaptation
from transforms.documents import (
    ADDRESS_KEYS,
    CPU_KEYS,
    MEMORY_KEYS,
    RING_PEER_KEYS,
    VM_ID_KEYS,
    field_of,
    first_of,
    named_items,
    text_of,
    vm_list_key,
)
from transforms.layout.files import RESTORED_EVENT, _listed, _mapping
from transforms.layout.mappings import EDITED_REASON
from transforms.layout.writer import LayoutWriter


class DirectorDocuments(LayoutWriter):
    """The layout writer, rewriting node and Director documents."""

    # -- nodes ---------------------------------------------------------------------------------------

    def node_file(self, rel: str, mode: int) -> None:
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

    def director_config(self, doc: dict[str, Any], rel: str) -> Any:
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

    def director_state(self, doc: dict[str, Any], rel: str) -> Any:
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

    def director_hardware(self, doc: dict[str, Any], rel: str) -> Any:
        director = rel.split("/")[1]
        old = _mapping(self.doc(rel), rel)
        old_node = str(old.get("hostname", self.env.director(director).node))
        return self._hardware(old_node, self.director_node[director], doc, old, rel)


def _keyed(raw: Any) -> list[tuple[Any, dict[str, Any]]]:
    """(key, item) of each object of a mapping keyed by name, or (None, item) of each in a list."""
    pairs = raw.items() if isinstance(raw, Mapping) else ((None, item) for item in _listed(raw))
    return [(key, item) for key, item in pairs if isinstance(item, dict)]
