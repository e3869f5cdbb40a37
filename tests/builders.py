"""Inventories for a demo environment, shared by the planning, layout and recovery tests, and a walk
over a plan's step graph."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from omni_recovery.adapt.inventory import Inventory, inventory_to_yaml, make_inventory
from omni_recovery.envstate.folder import environment_from_folder
from transforms.documents import Environment

NodeSpec = tuple[str, int, int, int]


def same_shaped_nodes(env: Environment) -> list[NodeSpec]:
    """One new node per node of `env`, named new-<name>, of the same cores, memory and disk."""
    return [(f"new-{n.name}", n.cpu_cores, n.memory_mib, n.disk_gib) for n in env.nodes]


def same_shaped(env: Environment) -> Inventory:
    return make_inventory(same_shaped_nodes(env))


def fewer_larger() -> Inventory:
    return make_inventory([(f"big-{i}", 64, 524288, 8000) for i in range(3)])


def more_smaller() -> Inventory:
    return make_inventory([(f"small-{i}", 24, 131072, 2000) for i in range(8)])


def write_inventory(folder: Path, nodes: list[NodeSpec], root: str) -> Path:
    """`folder`/inventory.yaml of `nodes`, with target root `root`."""
    path = folder / "inventory.yaml"
    path.write_text(inventory_to_yaml(make_inventory(nodes, root=root)))
    return path


def same_shaped_inventory(env: Path, folder: Path) -> Path:
    """A same-shaped inventory of the environment folder `env`, written to `folder`/inventory.yaml."""
    return write_inventory(folder, same_shaped_nodes(environment_from_folder(env)), f"file://{folder}")


def reachable(edges: Mapping[str, Iterable[str]], starts: Iterable[str]) -> set[str]:
    """`starts` and every step reachable from them along `edges` (step → the steps it depends on)."""
    seen: set[str] = set()
    stack = list(starts)
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(edges[current])
    return seen
