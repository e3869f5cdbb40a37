"""Where a recovery may write: the inventory's roots, and nothing a plan says can move them.

`inventory_root_problems` finds an inventory's roots that are one folder through a symbolic link
(or lie inside one another through one), and a local root that is a system folder (`/`, `/etc`,
`/usr`, ... or a folder inside a system tree such as `/usr` or `/etc`) unless the operator allows it.
`plan_root_problems` finds the node roots of a plan that are not the inventory's for that node, pool
roots that are not the inventory's, and paths that do not lie inside their pool's inventory root.

Roots are compared in their canonical form (`canonical_url`): the path normalised (`..`, `.`,
trailing slashes) and, on a local root, its symbolic links resolved, so a link cannot make two
roots look apart or a plan's root look like the inventory's.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from omni_recovery.urls import is_under, overlapping, split_url

if TYPE_CHECKING:  # the inventory's loader calls this module, and plans build on inventories
    from omni_recovery.adapt.inventory_model import Inventory
    from transforms.plan import Plan

# Folders whose whole tree belongs to the operating system: no root may be there or inside.
SYSTEM_TREES = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32",
    "/proc", "/run", "/sbin", "/sys", "/usr",
)  # fmt: skip
# Folders that are the system's own, though a root may lie inside them (/dev/shm: the scratch
# tmpfs, the one place in a system tree where folders of one's own belong).
SYSTEM_FOLDERS = (
    "/", "/dev/shm", "/home", "/media", "/mnt", "/opt", "/root", "/srv", "/tmp",
    "/var", "/var/cache", "/var/lib", "/var/log", "/var/spool", "/var/tmp",
)  # fmt: skip
SCRATCH_IN_SYSTEM_TREES = ("/dev/shm",)
ALLOW_HINT = "give --allow-system-root if that is truly meant"


def canonical_url(url: str) -> str:
    """`url` normalised; a local path (plain or file://) with its symbolic links resolved."""
    protocol, path = split_url(url)
    if protocol == "file":
        path = os.path.realpath(path)
    return f"{protocol}://{path}"


def system_folder(url: str) -> str | None:
    """The system folder a local root is, or lies in (a system tree); None for any other root."""
    protocol, path = split_url(canonical_url(url))
    if protocol != "file" or any(is_under(scratch, path) for scratch in SCRATCH_IN_SYSTEM_TREES):
        return None
    for folder in SYSTEM_TREES:
        for form in {folder, os.path.realpath(folder)}:
            if path == form or is_under(form, path):
                return folder
    for folder in SYSTEM_FOLDERS:
        if path in {folder, os.path.realpath(folder)}:
            return folder
    return None


def inventory_root_problems(
    inventory: Inventory, *, allow_system_root: bool = False
) -> list[tuple[int, str]]:
    """Roots (each problem at its line) that are one folder through a symbolic link, or a system
    folder unless `allow_system_root`."""
    roots = [(n.root, n.root_line, f"node {n.name}") for n in inventory.nodes]
    roots += [(p.root, p.root_line, f"storage {p.name}") for p in inventory.storage]
    problems: list[tuple[int, str]] = []
    if not allow_system_root:
        for root, line, name in roots:
            folder = system_folder(root)
            if folder is not None:
                problems.append(
                    (line, f"{name}: root {root} is or lies in the system folder {folder}; {ALLOW_HINT}")
                )
    canonical = [(canonical_url(root), (line, name, root)) for root, line, name in roots]
    for (line, name, root), (_, outer, _), same in overlapping(canonical):
        where = "is the same folder as" if same else "lies inside"
        problems.append((line, f"{name}: root {root} {where} the root of {outer} through a symbolic link"))
    return problems


def plan_root_problems(plan: Plan, inventory: Inventory) -> list[tuple[int, str]]:
    """Every node root, pool root or path of `plan` (at its line) that is not the inventory's, or not
    inside it."""
    node_roots = {n.name: n.root for n in inventory.nodes}
    pool_roots = {p.name: p.root for p in inventory.storage}
    named = [(n.line, f"node {n.name}", n.root, node_roots.get(n.name)) for n in plan.nodes]
    named += [(p.line, f"storage pool {p.name}", p.root, pool_roots.get(p.name)) for p in plan.pools]
    problems = [problem for entry in named for problem in _root_problem(*entry)]
    for path in plan.paths:
        root = pool_roots.get(path.pool)
        if root is not None and not is_under(canonical_url(root), canonical_url(path.new_path)):
            message = f"{path.subject}: {path.new_path} lies outside storage pool {path.pool}'s root {root}"
            problems.append((path.line, message))
    return problems


def _root_problem(line: int, name: str, root: str, expected: str | None) -> list[tuple[int, str]]:
    """What is wrong with the plan's `root` of `name`, given the inventory's (`expected`)."""
    if expected is None:
        return [(line, f"{name} is not in the inventory")]
    if canonical_url(root) != canonical_url(expected):
        return [(line, f"{name}: root {root} is not the inventory's root {expected}")]
    return []
