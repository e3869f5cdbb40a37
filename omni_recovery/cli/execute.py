"""`execute-plan` and `deploy-directors`: options parsed here, the work done by the library."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from omni_recovery.cli.options import (
    absolute_location_callback,
    allow_system_root_option,
    handle_errors,
    passphrase_option,
    progress_every_option,
    read_passphrase,
    ssh_options,
    workspace_option,
)
from omni_recovery.cli.workers import executor_options
from omni_recovery.settings import WORKSPACE_ENV

if TYPE_CHECKING:
    from omni_recovery.execute.options import ExecuteOptions
    from transforms.plan import Plan

DEFAULT_PARALLEL_FACTOR = 2


@click.command("execute-plan")
@click.option(
    "--plan",
    "plan_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True, resolve_path=True, path_type=Path),
    help="The recovery plan (from plan-generate, possibly edited; re-validated before anything runs).",
)
@click.option(
    "--applications",
    default="",
    help="Comma-separated applications to restore alone (with their hard "
    "dependencies); default: the whole environment.",
)
@passphrase_option
@click.option(
    "--parallel-factor",
    default=None,
    type=click.IntRange(1, 64),
    help="Steps run at once (those whose dependencies are done), and files restored at once within a step "
    "[default: the plan's recommendation (plan-overlay.yaml), else 2].",
)
@click.option(
    "--io-priority",
    type=click.Choice(["low", "normal", "high"]),
    default="normal",
    show_default=True,
    help="This process's I/O priority (idle / best-effort / best-effort highest).",
)
@click.option(
    "--mode",
    type=click.Choice(["normal", "resource-efficient"]),
    default="normal",
    show_default=True,
    help="resource-efficient: one worker, bounded memory.",
)
@click.option(
    "--adaptation-mode",
    type=click.Choice(["basic", "advanced"]),
    default=None,
    help="Must match the plan's mode when given (the plan decides the adaptation; see plan-generate).",
)
@click.option(
    "--path",
    "location",
    default=None,
    callback=absolute_location_callback,
    help="Backup set folder or URL (default: as recorded by plan-generate).",
)
@click.option(
    "--inventory",
    type=click.Path(dir_okay=False, exists=True, resolve_path=True, path_type=Path),
    default=None,
    help="Inventory file (default: as recorded by plan-generate).",
)
@click.option(
    "--signing-key",
    type=click.Path(dir_okay=False, exists=True, resolve_path=True, path_type=Path),
    default=None,
    help="Ed25519 key that signs the post-recovery backup (without it that step is skipped).",
)
@click.option(
    "--reverify",
    is_flag=True,
    help="Final verification re-reads and re-hashes every restored file (default: the digests taken while "
    "writing, checked against the backup's, and the sizes on disk).",
)
@allow_system_root_option
@click.option(
    "--numeric-owner",
    is_flag=True,
    help="Give restored files their recorded uid/gid numbers, not the owners of the recorded user and group "
    "names on this machine (as tar --numeric-owner).",
)
@ssh_options
@executor_options
@progress_every_option
@workspace_option
def execute_plan(
    plan_path: Path,
    applications: str,
    passphrase_file: Path | None,
    parallel_factor: int | None,
    io_priority: str,
    mode: str,
    adaptation_mode: str | None,
    location: str | None,
    inventory: Path | None,
    signing_key: Path | None,
    reverify: bool,
    allow_system_root: bool,
    numeric_owner: bool,
    ssh_identity: Path | None,
    bandwidth_limit: int | None,
    ssh_data_channel: str,
    executor: str,
    broker: str | None,
    visibility_timeout: int,
    progress_every: float,
    workspace: Path | None,
) -> None:
    """Execute a recovery plan: Directors and ring, Orchestrators and cluster, storage and volumes,
    core services, applications by priority, verification, report, post-recovery backup.

    Refused before anything is written when the set has no passing deep validation on record, the
    passphrase is wrong, or the plan does not validate. A killed run is resumed by running the same
    command again: verified files and finished steps are not redone.

    \b
    Example:
      omni-recovery execute-plan --plan recovery-plan.yaml --passphrase-file ./passphrase \\
          --signing-key ./keys/backup-signing.key
      omni-recovery execute-plan --plan recovery-plan.yaml --applications billing,orders
    """
    from omni_recovery.execute.options import ExecuteOptions

    options = ExecuteOptions(
        plan_path=plan_path,
        location=location,
        inventory_path=inventory,
        applications=tuple(a.strip() for a in applications.split(",") if a.strip()),
        parallel_factor=parallel_factor or DEFAULT_PARALLEL_FACTOR,
        io_priority=io_priority,
        mode=mode,
        signing_key=signing_key,
        reverify=reverify,
        allow_system_root=allow_system_root,
        numeric_owner=numeric_owner,
        ssh_identity=ssh_identity,
        bandwidth_limit=bandwidth_limit,
        ssh_data_channel=ssh_data_channel,
        executor=executor,
        broker=broker,
        visibility_timeout=visibility_timeout,
    )
    handle_errors(_execute)(
        options,
        passphrase_file,
        workspace,
        adaptation_mode,
        only_directors=False,
        follow_recommendation=parallel_factor is None,
        progress_every=progress_every,
    )


@click.command("deploy-directors")
@click.option(
    "--config",
    "plan_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True, resolve_path=True, path_type=Path),
    help="The recovery plan whose Director phase to run.",
)
@click.option(
    "--parallel",
    default=2,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Directors deployed at once, and files restored at once for each.",
)
@passphrase_option
@allow_system_root_option
@ssh_options
@progress_every_option
@workspace_option
def deploy_directors(
    plan_path: Path,
    parallel: int,
    passphrase_file: Path | None,
    allow_system_root: bool,
    ssh_identity: Path | None,
    bandwidth_limit: int | None,
    ssh_data_channel: str,
    progress_every: float,
    workspace: Path | None,
) -> None:
    """Run only the Director phase of a plan: Directors restored with new certificates, then the ring.

    \b
    Example:
      omni-recovery deploy-directors --parallel 5 --config recovery-plan.yaml
    """
    from omni_recovery.execute.options import ExecuteOptions

    options = ExecuteOptions(
        plan_path=plan_path,
        parallel_factor=parallel,
        allow_system_root=allow_system_root,
        ssh_identity=ssh_identity,
        bandwidth_limit=bandwidth_limit,
        ssh_data_channel=ssh_data_channel,
    )
    handle_errors(_execute)(
        options, passphrase_file, workspace, None, only_directors=True, progress_every=progress_every
    )


def _execute(
    options: ExecuteOptions,
    passphrase_file: Path | None,
    workspace: Path | None,
    adaptation_mode: str | None,
    *,
    only_directors: bool,
    follow_recommendation: bool = False,
    progress_every: float,
) -> None:
    from omni_recovery.cli.watch import watching
    from omni_recovery.db.server import database_url
    from omni_recovery.execute.io_priority import set_io_priority
    from omni_recovery.plan.generate import plan_id
    from omni_recovery.plan.overlay import recommended_parallel_factor
    from omni_recovery.settings import load_settings

    passphrase = read_passphrase(passphrase_file)
    assert passphrase is not None
    set_io_priority(options.io_priority)
    plan = _check_plan(options.plan_path, adaptation_mode)
    recommended = recommended_parallel_factor(plan.adaptations) if follow_recommendation else None
    if recommended is not None:
        click.echo(
            f"--parallel-factor {recommended}: the plan's recommendation (give --parallel-factor to override)"
        )
        options = replace(options, parallel_factor=recommended)
    settings = load_settings(workspace)
    if not settings.workspace.exists():
        click.echo(
            f"workspace {settings.workspace}: new, made now (--workspace or {WORKSPACE_ENV} names another)"
        )
    from pipelines.recovery_runner import DIRECTOR_PHASES

    phases = DIRECTOR_PHASES if only_directors else None
    with watching(database_url(settings), plan_id(plan), progress_every, phases=phases) as display:
        if only_directors:
            from pipelines.recovery_runner import deploy_directors as run

            summary = run(settings, options, passphrase, echo=display.echo)
        else:
            from pipelines.recovery_runner import execute_recovery

            summary = execute_recovery(settings, options, passphrase, echo=display.echo)
    click.echo(f"recovery run {summary.run_id} finished")
    if summary.report:
        click.echo(f"report: {summary.report}")
    if summary.post_recovery_backup:
        click.echo(f"post-recovery backup: {summary.post_recovery_backup}")


def _check_plan(plan_path: Path, adaptation_mode: str | None) -> Plan:
    """The plan read on its own before anything else: an edit that broke its YAML or its steps
    is named by line before the set, the inventory or the database are looked for."""
    from omni_recovery.errors import RecoveryError
    from transforms.plan import plan_from_yaml

    plan = plan_from_yaml(plan_path.read_text(encoding="utf-8"), source=str(plan_path))
    planned = plan.adaptation_mode
    if adaptation_mode is not None and planned != adaptation_mode:
        raise RecoveryError(
            f"the plan was generated with --adaptation-mode {planned}; generate it again with "
            f"{adaptation_mode} to change how it adapts"
        )
    return plan
