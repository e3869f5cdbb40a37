"""The target inventory (`inventory.yaml`): the new infrastructure a backup set is restored onto.

`parse_inventory(text)` reads and validates it (shape in docs/backup-format.md, "The target
inventory"; the checks in adapt.inventory_checks, the model in adapt.inventory_model). Every
problem found is reported at once in one InventoryError, each naming the line of the YAML at
fault and what is wrong. `load_inventory(path)` also checks the roots on this machine
(adapt.root_safety).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from omni_recovery.adapt.inventory_checks import InventoryChecker
from omni_recovery.adapt.inventory_model import (
    STORAGE_CLASSES,
    SUBNET_ROLES,
    Inventory,
    InventoryDisk,
    InventoryNetwork,
    InventoryNic,
    InventoryNode,
    SshKeys,
    StoragePool,
    inventory_to_yaml,
    make_inventory,
)
from omni_recovery.adapt.root_safety import inventory_root_problems
from omni_recovery.errors import RecoveryError
from omni_recovery.yaml_text import load_yaml_with_lines, yaml_error_line

__all__ = [
    "STORAGE_CLASSES",
    "SUBNET_ROLES",
    "Inventory",
    "InventoryDisk",
    "InventoryError",
    "InventoryNetwork",
    "InventoryNic",
    "InventoryNode",
    "SshKeys",
    "StoragePool",
    "inventory_to_yaml",
    "load_inventory",
    "make_inventory",
    "parse_inventory",
]


class InventoryError(RecoveryError):
    """The inventory is malformed; `problems` lists (line, message), line 0 when unknown."""

    def __init__(self, source: str, problems: list[tuple[int, str]]) -> None:
        self.source = source
        self.problems = sorted(problems)
        lines = [f"{source}:{line}: {msg}" if line else f"{source}: {msg}" for line, msg in self.problems]
        super().__init__("the target inventory is not valid:\n  " + "\n  ".join(lines))


def load_inventory(path: Path, *, allow_system_root: bool = False) -> Inventory:
    """Read and validate the inventory file at `path`, its roots checked on this machine (root_safety:
    no two the same folder through a symbolic link, no system folder unless `allow_system_root`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(str(path), [(0, f"cannot be read: {exc}")]) from exc
    inventory = parse_inventory(text, source=str(path))
    problems = inventory_root_problems(inventory, allow_system_root=allow_system_root)
    if problems:
        raise InventoryError(str(path), problems)
    return inventory


def parse_inventory(text: str, source: str = "inventory.yaml") -> Inventory:
    """Parse and validate inventory YAML; raise InventoryError listing every problem with its line."""
    try:
        doc = load_yaml_with_lines(text)
    except yaml.YAMLError as exc:
        raise InventoryError(source, [(yaml_error_line(exc), f"not valid YAML: {exc}")]) from exc
    check = InventoryChecker()
    inventory = check.document(doc)
    if check.problems or inventory is None:
        raise InventoryError(source, check.problems or [(0, "empty inventory")])
    return inventory
