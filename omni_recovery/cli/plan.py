"""`omni-recovery plan-generate`: options parsed here, the work done by omni_recovery.plan.generate."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import click

from omni_recovery.cli.options import (
    absolute_location_callback,
    allow_system_root_option,
    handle_errors,
    inventory_option,
    workspace_option,
)

if TYPE_CHECKING:
    from omni_recovery.settings import Settings
    from transforms.plan import Plan


@click.command("plan-generate")
@inventory_option("The new infrastructure (inventory.yaml: nodes, network, storage).")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, resolve_path=True, path_type=Path),
    default=Path("recovery-plan.yaml"),
    show_default=True,
    help="Plan file to write; its graph goes beside it as .svg.",
)
@click.option(
    "--path",
    "location",
    default=None,
    callback=absolute_location_callback,
    help="Backup set folder or fsspec URL. Default: the registered set (see --backup-set-id).",
)
@click.option(
    "--backup-set-id",
    default=None,
    help="Without --path: plan this registered set. Default: the most recently registered one.",
)
@click.option(
    "--adaptation-mode",
    type=click.Choice(["basic", "advanced"]),
    default="basic",
    show_default=True,
    help="basic keeps the original shape where it fits; advanced rebalances across unequal hardware.",
)
@click.option(
    "--store/--no-store", default=True, show_default=True, help="Record the plan in the recovery database."
)
@click.option(
    "--accept-changed-hardware",
    is_flag=True,
    help="Plan even where a node's machine (an ssh:// node, or any node of an inventory written by "
    "inventory-scan) no longer shows the cores, memory, disks or NIC MACs the inventory records "
    "(the differences are printed).",
)
@allow_system_root_option
@workspace_option
def plan_generate(
    inventory: Path,
    output: Path,
    location: str | None,
    backup_set_id: str | None,
    adaptation_mode: str,
    store: bool,
    accept_changed_hardware: bool,
    allow_system_root: bool,
    workspace: Path | None,
) -> None:
    """Adapt a backup set to new hardware and write the recovery plan a person reads and may edit.

    Every adaptation (node mapping, placement, scaling, addresses, MACs, storage paths) is listed
    old → new in the plan. An inventory too small is refused, saying what does not fit and by how much.
    Without --path, the set planned is the one registered (register-isos) as --backup-set-id, else
    the most recently registered set, in the folder it was registered from.

    The machine of each ssh:// node, and of every node of an inventory inventory-scan wrote, is read
    again: an inventory whose cores, memory, disks or NIC MACs no longer match a node it reaches is
    refused, naming the node, the fact, and the recorded and found values (--accept-changed-hardware
    plans anyway). The file:// nodes of a hand-written inventory are not compared.

    \b
    Example:
      omni-recovery plan-generate --path ./backups/set1 --inventory inventory.yaml \\
          --output recovery-plan.yaml --adaptation-mode advanced
      omni-recovery plan-generate --inventory inventory.yaml --output recovery-plan.yaml
    """
    handle_errors(_check_hardware)(inventory, accept_changed_hardware, allow_system_root)
    handle_errors(_run)(
        inventory, output, location, backup_set_id, adaptation_mode, store, allow_system_root, workspace
    )


def _check_hardware(inventory: Path, accept: bool, allow_system_root: bool) -> None:
    """Refuse an inventory whose compared nodes' machines show other figures, unless accepted."""
    from omni_recovery.adapt.hardware_changes import changed_hardware
    from omni_recovery.adapt.inventory import load_inventory
    from omni_recovery.errors import RecoveryError

    compared = changed_hardware(load_inventory(inventory, allow_system_root=allow_system_root))
    for node, why in compared.unread.items():
        click.echo(f"node {node}: not compared with its machine: {why}")
    if not compared.changes:
        return
    changes = "; ".join(str(change) for change in compared.changes)
    if not accept:
        raise RecoveryError(
            f"{inventory}: the machines no longer match the inventory: {changes}. Scan them again "
            "(inventory-scan --write-inventory) or plan anyway with --accept-changed-hardware"
        )
    click.echo(f"planning on changed hardware, as accepted: {changes}")


def _run(
    inventory: Path,
    output: Path,
    location: str | None,
    backup_set_id: str | None,
    mode: str,
    store: bool,
    allow_system_root: bool,
    workspace: Path | None,
) -> None:
    from omni_recovery.errors import RecoveryError
    from omni_recovery.register.registered_sets import registered_set_at, registered_set_location
    from omni_recovery.register.ssh_hosts import pin_registered_hosts
    from omni_recovery.settings import load_settings

    settings = load_settings(workspace)
    pin_registered_hosts(settings.workspace)
    if location is None:
        backup_set_id, location = registered_set_location(settings, backup_set_id)
        click.echo(f"planning registered backup set {backup_set_id} in {location}")
    elif backup_set_id is not None:
        raise RecoveryError("--backup-set-id chooses a registered set: give it without --path")
    else:
        backup_set_id = registered_set_at(settings, location)
    if store and backup_set_id is not None:
        _plan_in_dagster(settings, backup_set_id, location, inventory, output, mode, allow_system_root)
    else:
        _plan_here(settings, backup_set_id, location, inventory, output, mode, store, allow_system_root)


def _plan_in_dagster(
    settings: Settings,
    backup_set_id: str,
    location: str,
    inventory: Path,
    output: Path,
    mode: str,
    allow_system_root: bool,
) -> None:
    """A registered set: the `plan_recovery` job plans and stores it (the UI shows it); copied to output."""
    from omni_recovery.plan.generate import record_plan_source
    from pipelines.plan_runner import plan_registered_set
    from transforms.plan import plan_from_yaml

    planned = plan_registered_set(
        settings, backup_set_id, inventory, mode, allow_system_root=allow_system_root
    )
    svg = output.with_suffix(".svg")
    _copy_whole(planned.plan_path, output)
    _copy_whole(planned.svg_path, svg)
    record_plan_source(output, location, inventory, settings.workspace)
    _echo_plan(plan_from_yaml(output.read_text(encoding="utf-8")), mode, output, svg)
    click.echo(f"recorded in the recovery database as {planned.plan_id}")
    click.echo(f"dagster run {planned.run_id} (job plan_recovery)")


def _plan_here(
    settings: Settings,
    backup_set_id: str | None,
    location: str,
    inventory: Path,
    output: Path,
    mode: str,
    store: bool,
    allow_system_root: bool,
) -> None:
    """A set not registered (or --no-store): planned in this process."""
    from omni_recovery.db.schema import init_database
    from omni_recovery.db.server import database_url
    from omni_recovery.errors import RecoveryError
    from omni_recovery.plan.generate import generate, record_plan_source, store_plan, write_plan_files

    plan, _ = generate(
        location, inventory, mode, allow_system_root=allow_system_root, workspace=settings.workspace
    )
    if backup_set_id is not None and plan.backup_set_id != backup_set_id:
        raise RecoveryError(f"the set registered as {backup_set_id} in {location} holds {plan.backup_set_id}")
    svg = write_plan_files(plan, output)
    record_plan_source(output, location, inventory, settings.workspace)
    _echo_plan(plan, mode, output, svg)
    if store:
        url = database_url(settings)
        init_database(url)
        click.echo(f"recorded in the recovery database as {store_plan(url, plan)}")


def _echo_plan(plan: Plan, mode: str, output: Path, svg: Path) -> None:
    from transforms.plan import step_count

    phases = Counter(step.phase for step in plan.steps if not step.is_gate)
    click.echo(
        f"plan for {plan.backup_set_id} ({mode}): {step_count(plan)}, "
        f"{len(plan.adaptations)} adaptations; written to {output} (graph: {svg})"
    )
    for phase, count in phases.items():
        click.echo(f"  {phase:<24} {count:>4} step(s)")


def _copy_whole(source: Path, target: Path) -> None:
    """`source`'s bytes at `target`, which appears only when whole."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(source.read_bytes())
    partial.replace(target)
