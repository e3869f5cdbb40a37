"""`inventory-scan`: can the recovery reach and write every root the inventory names?

For each node and storage pool, `scan_inventory` opens its root as execute-plan would (an SSH root
through its pinned host key and key login: an unknown or wrong host key is refused, as ever) and
reports whether it answered, the free space under it, whether a file can be written under a
temporary name and renamed into place (a probe file, removed after), and whether the filesystem
fsyncs a file before its rename. Nothing else is written, and a root folder that is not there yet
is reported as such, not made.

What can go wrong: each root's failure (refused host key or login, no SSH server, a missing or
read-only folder, a full disk) is that root's `problem`, worded as execute-plan would say it; the
scan goes on to the next root.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

from omni_recovery.adapt.inventory import Inventory, SshKeys
from omni_recovery.errors import RecoveryError
from omni_recovery.targets import open_root
from omni_recovery.targets.driver import TargetRoot
from omni_recovery.targets.ssh_session import SshAccess

PROBE = ".omni-recovery-probe"


@dataclass(frozen=True)
class RootScan:
    """What one root answered."""

    name: str
    kind: str  # "node" or "pool"
    root: str
    reachable: bool = False
    free_bytes: int | None = None
    writable: bool = False
    fsync: bool = False
    problem: str = ""

    @property
    def ready(self) -> bool:
        return self.reachable and self.writable and not self.problem


def scan_inventory(inventory: Inventory, ssh_identity: str | None = None) -> list[RootScan]:
    """Every node's and pool's root, probed in the inventory's order."""
    roots = [("node", n.name, n.root, n.ssh) for n in inventory.nodes]
    roots += [("pool", p.name, p.root, p.ssh) for p in inventory.storage]
    return [scan_root(kind, name, url, access_of(keys, ssh_identity)) for kind, name, url, keys in roots]


def access_of(keys: SshKeys | None, ssh_identity: str | None) -> SshAccess | None:
    """How to reach a root on another machine (--ssh-identity before the inventory's identity_file)."""
    return None if keys is None else SshAccess(keys.host_key, ssh_identity or keys.identity_file)


def scan_root(kind: str, name: str, url: str, access: SshAccess | None) -> RootScan:
    scan = RootScan(name, kind, url)
    try:
        root = open_root(url, access, create=False)
    except RecoveryError as exc:
        return RootScan(name, kind, url, problem=str(exc))
    try:
        free = root.free_space()
        scan = RootScan(name, kind, url, True, None if free is None else free.free)
        if not root.root_exists():
            return replace(scan, problem="the root folder is not there yet (execute-plan makes it)")
        _write_probe(root)
        return replace(scan, writable=True, fsync=root.offers_fsync())
    except RecoveryError as exc:
        return replace(scan, problem=str(exc))


def _write_probe(root: TargetRoot) -> None:
    """Write a probe file under its temporary name, rename it into place, read its size, remove it."""
    content = b"omni-recovery inventory-scan probe\n"
    try:
        root.write_bytes_atomic(PROBE, content)
        landed = root.size(PROBE)
    finally:
        with contextlib.suppress(RecoveryError):  # the write's own failure is the one to tell
            root.discard(PROBE)
    if landed != len(content):
        raise RecoveryError(f"{root.url}: {PROBE}: the probe file did not land whole")
