"""`omni-recovery plan-generate`: options parsed here, the work done by omni_recovery.planning."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click


@click.command("plan-generate")
@click.option(
    "--inventory",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The new infrastructure (inventory.yaml: nodes, network, storage).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("recovery-plan.yaml"),
    show_default=True,
    help="Plan file to write; its graph goes beside it as .svg.",
)
@click.option("--path", "location", default=None, help="Backup set folder or fsspec URL.")
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
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Workspace folder (database, catalog, reports). Default: $OMNI_RECOVERY_WORKSPACE or "
    "./.omni-recovery.",
)
def plan_generate(
    inventory: Path,
    output: Path,
    location: str | None,
    adaptation_mode: str,
    store: bool,
    workspace: Path | None,
) -> None:
    """Adapt a backup set to new hardware and write the recovery plan a person reads and may edit.

    Every adaptation (node mapping, placement, scaling, addresses, MACs, storage paths) is listed
    old → new in the plan. An inventory too small is refused, saying what does not fit and by how much.

    \b
    Example:
      omni-recovery plan-generate --path ./backups/set1 --inventory inventory.yaml \\
          --output recovery-plan.yaml --adaptation-mode advanced
    """
    from omni_recovery.cli import handle_errors

    handle_errors(_run)(inventory, output, location, adaptation_mode, store, workspace)


def _run(
    inventory: Path, output: Path, location: str | None, mode: str, store: bool, workspace: Path | None
) -> None:
    from omni_recovery.db.schema import init_database
    from omni_recovery.db.server import database_url
    from omni_recovery.errors import RecoveryError
    from omni_recovery.planning import generate, record_plan_source, store_plan, write_plan_files
    from omni_recovery.settings import load_settings

    if location is None:
        raise RecoveryError(
            "give the backup set with --path (planning the registered set comes with register-isos)"
        )
    plan, _ = generate(location, inventory, mode)
    svg = write_plan_files(plan, output)
    record_plan_source(output, location, inventory)
    phases = Counter(step.phase for step in plan.steps)
    click.echo(
        f"plan for {plan.backup_set_id} ({mode}): {len(plan.steps)} steps, "
        f"{len(plan.adaptations)} adaptations; written to {output} (graph: {svg})"
    )
    for phase, count in phases.items():
        click.echo(f"  {phase:<24} {count:>4} step(s)")
    if store:
        url = database_url(load_settings(workspace))
        init_database(url)
        click.echo(f"recorded in the recovery database as {store_plan(url, plan)}")
