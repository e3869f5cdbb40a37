"""Whether the machines an inventory records are still the ones its nodes' roots are on.

`changed_hardware(inventory, ssh_identity)` reads again (hardware_scan) the machine of each node whose
figures were taken from a machine: every `ssh://` node, and every node of an inventory that
`inventory-scan --write-inventory` wrote (it carries `scanned_at`). The `file://` nodes of a
hand-written inventory carry made-up figures (several such nodes are often folders of one machine)
and are not compared. Cores, memory, the disks (device and whole GiB) and the NICs' MACs are compared;
disks and NICs only where the machine shows some, as the scan keeps the recorded ones otherwise.
plan-generate refuses an inventory with a change unless told to accept it.

What can go wrong: a node that cannot be reached or read is not compared; it is listed in
`HardwareComparison.unread` with the reason, and nothing fails. An SSH host that does not answer
within REACH_SECONDS is not waited for (a plan may be made before the new machines are on the network).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from omni_recovery.adapt.hardware_scan import Hardware, read_hardware
from omni_recovery.adapt.inventory_model import Inventory, InventoryNode
from omni_recovery.adapt.scan import access_of
from omni_recovery.errors import RecoveryError
from omni_recovery.targets.ssh_session import SshUrl
from omni_recovery.urls import is_ssh_url

REACH_SECONDS = 5


@dataclass(frozen=True)
class HardwareChange:
    """One fact of a node whose machine no longer shows what the inventory records."""

    node: str
    fact: str
    recorded: str
    found: str

    def __str__(self) -> str:
        return f"node {self.node}: {self.fact} recorded {self.recorded}, found {self.found}"


@dataclass
class HardwareComparison:
    changes: list[HardwareChange] = field(default_factory=list)
    unread: dict[str, str] = field(default_factory=dict)  # node → why its machine was not compared


def compared_nodes(inventory: Inventory) -> list[InventoryNode]:
    """The nodes whose figures are their machines' (see the module documentation)."""
    return [n for n in inventory.nodes if is_ssh_url(n.root) or inventory.scanned_at is not None]


def changed_hardware(inventory: Inventory, ssh_identity: str | None = None) -> HardwareComparison:
    """Each compared node's machine read again, and what differs from the inventory."""
    result = HardwareComparison()
    for node in compared_nodes(inventory):
        try:
            _answers(node.root)
            machine = read_hardware(node.root, access_of(node.ssh, ssh_identity))
        except RecoveryError as exc:
            result.unread[node.name] = str(exc)
            continue
        result.changes += node_changes(node, machine)
    return result


def node_changes(node: InventoryNode, machine: Hardware) -> list[HardwareChange]:
    """What `machine` shows otherwise than the inventory records for `node`."""
    facts: list[tuple[str, object, object]] = [
        ("cpu_cores", node.cpu_cores, machine.cores),
        ("memory_mib", node.memory_mib, machine.memory_mib),
    ]
    disks = {d.device: d.size_bytes >> 30 for d in machine.disks if d.size_bytes >> 30}
    if disks:
        recorded = {d.device: d.size_gib for d in node.disks}
        facts.append(("disks", _listed(recorded), _listed(disks)))
    macs = sorted(nic.mac for nic in machine.nics)
    if macs:
        facts.append(("NIC MACs", ", ".join(sorted(n.mac for n in node.nics)), ", ".join(macs)))
    return [
        HardwareChange(node.name, fact, str(recorded), str(found))
        for fact, recorded, found in facts
        if recorded != found
    ]


def _answers(root: str) -> None:
    """Refuse, quickly, an SSH root whose host does not take a connection (nothing is sent)."""
    if not is_ssh_url(root):
        return
    url = SshUrl.parse(root)
    try:
        socket.create_connection((url.host, url.port), timeout=REACH_SECONDS).close()
    except OSError as exc:
        raise RecoveryError(f"{root}: not reached ({exc})") from exc


def _listed(disks: dict[str, int]) -> str:
    return ", ".join(f"{device} {gib} GiB" for device, gib in sorted(disks.items()))
