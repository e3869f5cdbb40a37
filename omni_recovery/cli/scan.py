"""`omni-recovery inventory-scan`: options parsed here, the probing done by omni_recovery.adapt.scan."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from omni_recovery.cli.options import (
    allow_system_root_option,
    handle_errors,
    inventory_option,
    ssh_identity_option,
)

if TYPE_CHECKING:
    from omni_recovery.adapt.inventory import Inventory

__all__ = ["inventory_scan"]


@click.command("inventory-scan")
@inventory_option("The new infrastructure (inventory.yaml) whose node and pool roots to probe.")
@ssh_identity_option(
    "The private key to log in to SSH roots with (else each root's identity_file, else the agent)."
)
@allow_system_root_option
@click.option(
    "--write-inventory",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write the inventory with each node's cores, memory, disks and NICs as found, to complete.",
)
@handle_errors
def inventory_scan(
    inventory: Path, ssh_identity: Path | None, allow_system_root: bool, write_inventory: Path | None
) -> None:
    """Probe every node and storage pool root of the inventory before a recovery.

    For each root: does it answer (an SSH host must prove its host_key), its free space, whether a
    file can be written and renamed into place (a probe file, removed after), and whether the
    filesystem fsyncs. For each node: its machine's cores, memory, disks and NICs, read from its
    /proc and /sys (over SSH for an SSH root). Exit status 1 when a root is not ready or a node's
    machine could not be read (one line per node says why).

    \b
    Example:
      omni-recovery inventory-scan --inventory inventory.yaml --write-inventory scanned.yaml
    """
    from omni_recovery.adapt.inventory import load_inventory
    from omni_recovery.adapt.scan import scan_inventory
    from omni_recovery.errors import RecoveryError

    found = load_inventory(inventory, allow_system_root=allow_system_root)
    scans = scan_inventory(found, str(ssh_identity) if ssh_identity else None)
    click.echo(f"{'root':<24} {'reachable':<10} {'free':>10}  {'write+rename':<13} {'fsync':<6} url")
    for scan in scans:
        free = "-" if scan.free_bytes is None else f"{scan.free_bytes / 2**30:.1f} GiB"
        click.echo(
            f"{scan.kind + ' ' + scan.name:<24} {_yes(scan.reachable):<10} {free:>10}  "
            f"{_yes(scan.writable):<13} {_yes(scan.fsync):<6} {scan.root}"
        )
    problems = [f"{scan.kind} {scan.name}: {scan.problem}" for scan in scans if scan.problem]
    for line in problems:
        click.echo(f"  {line}")
    unread = _report_hardware(found, str(ssh_identity) if ssh_identity else None, write_inventory)
    not_ready = [scan for scan in scans if not scan.ready]
    failures = [f"{len(not_ready)} of {len(scans)} roots are not ready"] if not_ready else []
    if unread:
        failures.append(f"the machine of {len(unread)} of {len(found.nodes)} nodes could not be read")
    if failures:
        raise RecoveryError("; ".join(failures) + " (above)")
    click.echo(f"all {len(scans)} roots are ready")


def _report_hardware(found: Inventory, ssh_identity: str | None, write_to: Path | None) -> list[str]:
    """Each node's machine, one line each; and the inventory with those figures, if asked for. The
    nodes whose machine could not be read."""
    from omni_recovery.adapt.hardware_scan import describe, scan_hardware, with_hardware, write_inventory
    from omni_recovery.adapt.inventory import InventoryError, load_inventory

    machines = scan_hardware(found, ssh_identity)
    for name, machine in machines.items():
        click.echo(f"node {name}: {machine if isinstance(machine, str) else describe(machine)}")
    if write_to is not None:
        read = {name: machine for name, machine in machines.items() if not isinstance(machine, str)}
        write_inventory(write_to, with_hardware(found, read))
        click.echo(
            f"wrote {write_to} ({len(read)} of {len(machines)} nodes as found); complete it or accept it"
        )
        try:
            load_inventory(write_to)
        except InventoryError as exc:
            click.echo(f"  to fix in it before plan-generate: {exc}")
    return [name for name, machine in machines.items() if isinstance(machine, str)]


def _yes(value: bool) -> str:
    return "yes" if value else "no"
