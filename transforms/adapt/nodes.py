"""Hardware mapping, first step: every old node onto one of the inventory's nodes.

Pure functions, no I/O. `map_nodes` gives every old Director host its own new node, busiest
Director first — like for like (the smallest free node at least as large as the old one) or
largest first — then old compute and storage nodes get what is left (compute by cores, storage by
disk); old nodes with nothing left are retired, new nodes nobody needs stay spare. The Directors'
slots it returns are what `hardware.py` places VMs onto.
"""

from __future__ import annotations

from dataclasses import dataclass

from omni_recovery.adapt.inventory import Inventory, InventoryNode
from transforms.adapt.vocabulary import Adaptation, AdaptationError, AdaptationPolicy
from transforms.documents import Environment, Node


@dataclass(frozen=True)
class DirectorSlot:
    """One Director on its new node, with the capacity it offers to VMs."""

    director: str
    node: str
    old_node: str
    cpu_cores: int
    memory_mib: int
    disk_gib: int
    reserved_cpu: int
    reserved_memory_mib: int

    def vcpu_capacity(self, policy: AdaptationPolicy) -> float:
        return max(0, self.cpu_cores - self.reserved_cpu) * policy.cpu_overcommit

    def memory_capacity(self) -> int:
        return max(0, self.memory_mib - self.reserved_memory_mib)


@dataclass(frozen=True)
class NodeMapping:
    """An old node and the new node it became (None: retired), or a spare new node (old None)."""

    old_node: str | None
    new_node: str | None
    role: str
    director: str | None


@dataclass(frozen=True)
class HardwareMapping:
    slots: tuple[DirectorSlot, ...]
    nodes: tuple[NodeMapping, ...]
    adaptations: tuple[Adaptation, ...]

    def new_node_of(self, old_node: str) -> str | None:
        return next((m.new_node for m in self.nodes if m.old_node == old_node), None)

    def slot(self, director: str) -> DirectorSlot:
        return next(s for s in self.slots if s.director == director)


def _describe(cores: int, memory: int, disk: int) -> str:
    return f"{cores} cores, {memory} MiB, {disk} GiB disk"


def _capacity_key(node: InventoryNode) -> tuple[int, int, int, str]:
    return (-node.cpu_cores, -node.memory_mib, -node.disk_gib, node.name)


def map_nodes(
    env: Environment, inventory: Inventory, policy: AdaptationPolicy, strategy: str = "like"
) -> HardwareMapping:
    """Map every old node onto a new one, Director hosts first (the busiest first).

    strategy "like": each Director host gets the smallest free node at least as large as its old
    node (the largest free one when none is), so a same-shaped inventory keeps its shape;
    "largest": each gets the largest free node.
    """
    directors = list(env.directors)
    if len(inventory.nodes) < len(directors):
        raise AdaptationError(
            f"{len(directors)} Directors need {len(directors)} nodes (each Director runs on its own node); "
            f"the inventory has {len(inventory.nodes)} (short by {len(directors) - len(inventory.nodes)})"
        )
    load: dict[str, tuple[float, int]] = {
        d.director_id: (d.reserved_cpu, d.reserved_memory_mib) for d in directors
    }
    for vm in env.vms:
        cpu, mem = load.get(vm.director, (0.0, 0))
        load[vm.director] = (cpu + vm.cpu / policy.cpu_overcommit, mem + vm.memory_mib)
    directors.sort(key=lambda d: (-load[d.director_id][0], -load[d.director_id][1], d.director_id))
    free = sorted(inventory.nodes, key=_capacity_key)
    old_nodes = {n.name: n for n in env.nodes}
    slots, mappings, adaptations = [], [], []
    for director in directors:
        old = old_nodes.get(director.node)
        new, reason = _pick_node(old, free, strategy)
        free.remove(new)
        slots.append(
            DirectorSlot(
                director.director_id,
                new.name,
                director.node,
                new.cpu_cores,
                new.memory_mib,
                new.disk_gib,
                director.reserved_cpu,
                director.reserved_memory_mib,
            )
        )
        mappings.append(NodeMapping(director.node, new.name, "director", director.director_id))
        adaptations.append(
            Adaptation(
                "node",
                f"node {director.node} (Director {director.director_id})",
                f"{director.node}: "
                + (_describe(old.cpu_cores, old.memory_mib, old.disk_gib) if old else "unknown"),
                f"{new.name}: {_describe(new.cpu_cores, new.memory_mib, new.disk_gib)}",
                reason,
            )
        )
    rest = free
    host_names = {d.node for d in directors}
    for old in sorted((n for n in env.nodes if n.name not in host_names), key=lambda n: n.name):
        mappings.append(_map_other(old, rest, adaptations))
    for spare in rest:
        mappings.append(NodeMapping(None, spare.name, "spare", None))
        adaptations.append(
            Adaptation(
                "node", f"node {spare.name}", "none", f"{spare.name}: spare", "not needed by the environment"
            )
        )
    return HardwareMapping(tuple(slots), tuple(mappings), tuple(adaptations))


def _pick_node(old: Node | None, free: list[InventoryNode], strategy: str) -> tuple[InventoryNode, str]:
    """The new node for a Director host (free is sorted largest first)."""
    if strategy == "like" and old is not None:
        enough = [n for n in free if n.cpu_cores >= old.cpu_cores and n.memory_mib >= old.memory_mib]
        if enough:
            return enough[-1], "smallest free node at least as large as the old one"
    return free[0], "largest free node, for the Director with the most load"


def _map_other(old: Node, rest: list[InventoryNode], adaptations: list[Adaptation]) -> NodeMapping:
    """Give an old compute/storage node the remaining new node that suits its role best (or retire it)."""
    if not rest:
        adaptations.append(
            Adaptation(
                "node",
                f"node {old.name} ({old.role})",
                f"{old.name}: {_describe(old.cpu_cores, old.memory_mib, old.disk_gib)}",
                "retired",
                "no node left in the inventory; it ran no VM, its role is carried by the Director nodes",
            )
        )
        return NodeMapping(old.name, None, old.role, None)
    if old.role == "storage":
        best = max(rest, key=lambda n: (n.disk_gib, n.memory_mib, n.name))
    else:
        best = max(rest, key=lambda n: (n.cpu_cores, n.memory_mib, n.name))
    rest.remove(best)
    adaptations.append(
        Adaptation(
            "node",
            f"node {old.name} ({old.role})",
            f"{old.name}: {_describe(old.cpu_cores, old.memory_mib, old.disk_gib)}",
            f"{best.name}: {_describe(best.cpu_cores, best.memory_mib, best.disk_gib)}",
            f"remaining node with the most {'disk' if old.role == 'storage' else 'cores'}",
        )
    )
    return NodeMapping(old.name, best.name, old.role, None)
