"""`omni-recovery drill`: parse options and call omni_recovery.practice; print its one-line verdicts."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from omni_recovery.cli.options import (
    handle_errors,
    passphrase_option,
    read_passphrase,
    trusted_key_option,
    workspace_option,
)


@click.command("drill")
@click.option("--path", "location", required=True, help="Folder or fsspec URL of the set to rehearse.")
@trusted_key_option
@passphrase_option
@click.option(
    "--inventory",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="A real test site to restore onto (its roots must be empty); default: scratch folders "
    "under the workspace shaped like the set's nodes.",
)
@click.option("--keep", is_flag=True, help="Leave the scratch targets in place for inspection.")
@click.option(
    "--parallel-factor",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Threads hashing and steps restoring at once.",
)
@workspace_option
@handle_errors
def drill(
    location: str,
    trusted_keys: tuple[str, ...],
    passphrase_file: Path | None,
    inventory: Path | None,
    keep: bool,
    parallel_factor: int,
    workspace: Path | None,
) -> None:
    """Rehearse the whole recovery of a set onto scratch targets, with no operator input.

    Registers the set, validates it deeply, plans it onto scratch targets, executes the plan,
    compares the restored tree with the catalog, checks the report and removes the scratch
    targets (unless --keep). Prints one verdict line with the time of each stage and the
    projected time of a real recovery; every drill is recorded in omni.drills. Exits 1 when
    the drill fails.

    \b
    Example:
      omni-recovery drill --path ./backups/set1 --trusted-key ./keys/backup-signing.key.pub \\
          --passphrase-file ./passphrase
      omni-recovery sql "SELECT backup_set_id, started_at, passed, durations FROM omni.drills"
    """
    from omni_recovery.backupset.signing import TrustedSigners, trusted_specs
    from omni_recovery.settings import load_settings
    from pipelines.drill import DrillOptions, run_drill

    passphrase = read_passphrase(passphrase_file)
    assert passphrase is not None
    options = DrillOptions(
        location=location,
        trusted=TrustedSigners.from_specs(trusted_specs(trusted_keys)),
        passphrase=passphrase,
        inventory=inventory,
        keep=keep,
        parallel_factor=parallel_factor,
    )
    result = run_drill(load_settings(workspace), options, echo=click.echo)
    if result.kept_scratch:
        click.echo(f"scratch targets kept in {result.kept_scratch}")
    click.secho(result.verdict(), fg="green" if result.passed else "red")
    sys.exit(0 if result.passed else 1)


def verification_status(workspace: Path | None, _runs: int = 0) -> None:
    """Per set under rotation: the share of its bytes verified and the age of the oldest verified byte."""
    from datetime import UTC, datetime

    from omni_recovery.db.connection import connect
    from omni_recovery.db.schema import init_database
    from omni_recovery.db.server import database_url
    from omni_recovery.practice.rotation import coverage
    from omni_recovery.settings import load_settings

    url = database_url(load_settings(workspace))
    init_database(url)
    with connect(url) as conn:
        sets = coverage(conn)
    if not sets:
        click.echo("no set under rotating verification yet (validate-isos --deep --subset auto/N)")
    now = datetime.now(UTC)
    for one in sets:
        click.echo(one.line(now))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def omni() -> None:
    """omni: what a finished recovery suggests for the environment and the next recovery.

    \b
    Example:
      omni performance optimize
    """


@omni.group()
def performance() -> None:
    """Performance of the recoveries on record.

    \b
    Example:
      omni performance optimize --run 2f0c…
    """


@performance.command("optimize")
@click.option("--run", "run_id", default=None, help="Recovery run to analyse (default: the latest).")
@click.option(
    "--apply-recommendations",
    "apply",
    is_flag=True,
    help="Also apply those that change the restored environment (rebalances), as adaptations.",
)
@workspace_option
@handle_errors
def optimize(run_id: str | None, apply: bool, workspace: Path | None) -> None:
    """List the recommendations of a recovery run, each with its evidence: slow steps against the
    fastest of their phase, the --parallel-factor the run's concurrency suggests, Director nodes
    over or far under their capacity, scaled-down applications that another node has room for,
    pools close to full. With --apply-recommendations, each rebalance moves the VM between the
    restored Directors' state.json documents (written atomically) and is recorded as an adaptation,
    and the recommendations for the next recovery (the parallel factor) go into the workspace's
    plan-overlay.yaml, which plan-generate records in the next plan.

    \b
    Example:
      omni performance optimize --workspace /opt/omni-recovery/workspace
      omni performance optimize --apply-recommendations
    """
    import json

    from omni_recovery.db.schema import init_database
    from omni_recovery.db.server import database_url
    from omni_recovery.plan.overlay import overlay_from, write_overlay
    from omni_recovery.practice.optimize import apply_rebalances, recommendations_for
    from omni_recovery.settings import load_settings

    settings = load_settings(workspace)
    url = database_url(settings)
    init_database(url)
    found = recommendations_for(url, run_id)
    count = len(found.recommendations)
    click.echo(f"recovery run {found.run_id} of set {found.backup_set_id}: {count} recommendation(s)")
    for item in found.recommendations:
        click.echo(f"- [{item.kind}] {item.message}")
        click.echo(f"    evidence: {json.dumps(item.evidence, sort_keys=True)}")
    if apply:
        for item in apply_rebalances(url, found):
            documents = ", ".join(item.evidence["documents"])
            click.echo(f"applied [{item.kind}] {item.subject}: wrote {documents}; recorded as an adaptation")
        overlay = overlay_from(found.recommendations)
        if overlay:
            path = write_overlay(settings.workspace, overlay)
            click.echo(
                f"for the next recovery: wrote {path} ({', '.join(sorted(overlay))}); plan-generate reads it"
            )
