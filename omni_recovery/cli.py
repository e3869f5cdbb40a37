"""The `omni-recovery` command line: each command parses its options and calls the library.

Errors the library raises on purpose (RecoveryError) are printed as one clear line and exit
with status 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path

import click

from omni_recovery import __version__
from omni_recovery.cli_options import (
    SizeType,
    handle_errors,
    passphrase_option,
    progress_bars,
    read_passphrase,
    workspace_option,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """omni-recovery: bring OmniCloud back from a set of ISO 9660 backup files.

    \b
    The flow:  demo-env / backup create  →  init-database  →  register-isos
               →  validate-isos --deep  →  plan-generate  →  execute-plan

    \b
    Example:
      omni-recovery demo          # a demo environment backed up and recovered end to end
    """


@main.command()
def version() -> None:
    """Print the version.

    \b
    Example:
      omni-recovery version
    """
    click.echo(f"omni-recovery {__version__}")


@main.command("demo-env")
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to create (must not exist or be empty).",
)
@click.option("--nodes", default=5, show_default=True, help="Physical nodes.")
@click.option("--directors", default=3, show_default=True, help="Directors (one per node, in one ring).")
@click.option("--orchestrators", default=3, show_default=True, help="Orchestrator VMs (one cluster).")
@click.option("--applications", default=12, show_default=True, help="User applications.")
@click.option(
    "--volume-scale",
    type=click.Choice(["tiny", "small", "medium", "large"]),
    default="small",
    show_default=True,
    help="Volume data: tiny ≈ 2 MiB, small ≈ 20 MiB, medium ≈ 300 MiB, large ≈ 2.5 GiB.",
)
@click.option("--seed", default=42, show_default=True, help="Same seed, same bytes.")
@click.option("--name", default="demo", show_default=True, help="Environment name.")
@click.option(
    "--with-database",
    is_flag=True,
    help="The last application is billing-db, its volume a real PostgreSQL data folder (initdb, 10,000 rows; "
    "needs the embedded server's binaries; not byte-identical between runs).",
)
@handle_errors
def demo_env(
    output: Path,
    nodes: int,
    directors: int,
    orchestrators: int,
    applications: int,
    volume_scale: str,
    seed: int,
    name: str,
    with_database: bool,
) -> None:
    """Write a realistic demo OmniCloud environment state folder.

    \b
    Example:
      omni-recovery demo-env --output ./demo/env --applications 12 --volume-scale small
    """
    from omni_recovery.envstate.demo import DemoOptions, write_demo_environment

    options = DemoOptions(
        nodes=nodes,
        directors=directors,
        orchestrators=orchestrators,
        applications=applications,
        volume_scale=volume_scale,
        seed=seed,
        name=name,
        database=with_database,
    )
    with progress_bars() as progress:
        summary = write_demo_environment(output, options, progress=lambda n: progress("write", n))
    click.echo(f"demo environment written to {output}: {summary}")


@main.command()
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private key file to create (PEM); the public key goes beside it as FILE.pub.",
)
@handle_errors
def keygen(output: Path) -> None:
    """Make an Ed25519 signing key for backup sets and print its key id.

    Give the key id (or the .pub file) to recovery operators as their trusted signer.

    \b
    Example:
      omni-recovery keygen --output ./keys/backup-signing.key
    """
    from omni_recovery.backupset.signing import generate_signing_key

    key_id, pub = generate_signing_key(output)
    click.echo(f"key id: {key_id}\npublic key: {pub}")


@main.group()
def backup() -> None:
    """Write backup sets.

    \b
    Example:
      omni-recovery backup create --source ./env --output ./backups --signing-key ./keys/backup-signing.key
    """


@backup.command("create")
@click.option(
    "--source",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Environment state folder to back up.",
)
@click.option("--output", "-o", required=True, help="Folder or fsspec URL to write the ISO files into.")
@click.option(
    "--signing-key",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Ed25519 private key (from `omni-recovery keygen`).",
)
@passphrase_option
@click.option(
    "--max-iso-size",
    type=SizeType(),
    default="4G",
    show_default=True,
    help="Largest ISO to write; volume data spreads over more ISOs.",
)
@click.option(
    "--chunk-size",
    type=SizeType(),
    default="1G",
    show_default=True,
    help="Files above this are stored as parts (at most 4 GiB - 1).",
)
@click.option("--backup-set-id", default=None, help="Set id (default: ENVNAME-YYYYMMDDtHHMMSSz).")
@handle_errors
def backup_create(
    source: Path,
    output: str,
    signing_key: Path,
    passphrase_file: Path | None,
    max_iso_size: int,
    chunk_size: int,
    backup_set_id: str | None,
) -> None:
    """Back up an environment state folder into a signed, encrypted set of ISOs.

    \b
    Example:
      export OMNI_RECOVERY_PASSPHRASE='correct horse battery staple'
      omni-recovery backup create --source ./env --output ./backups/set1 \\
          --signing-key ./keys/backup-signing.key --max-iso-size 700M
    """
    from omni_recovery.backupset.signing import load_signing_key
    from omni_recovery.backupset.writer import WriterOptions, create_backup_set

    passphrase = read_passphrase(passphrase_file)
    assert passphrase is not None
    options = WriterOptions(backup_set_id=backup_set_id, max_iso_size=max_iso_size, chunk_size=chunk_size)
    with progress_bars() as progress:
        summary = create_backup_set(
            source,
            output,
            signing_key=load_signing_key(signing_key),
            passphrase=passphrase,
            options=options,
            progress=progress,
        )
    click.echo(
        f"backup set {summary.backup_set_id}: {len(summary.isos)} ISOs, {summary.files} entries, "
        f"{summary.data_bytes} data bytes in {summary.output}; signed by {summary.signer_key_id}"
    )


@main.command("init-database")
@workspace_option
@handle_errors
def init_database(workspace: Path | None) -> None:
    """Create or migrate the recovery database (embedded PostgreSQL unless OMNI_RECOVERY_DATABASE_URL).

    Safe to run again: applies only missing migrations.

    \b
    Example:
      omni-recovery init-database --workspace /opt/omni-recovery/workspace
    """
    from omni_recovery.db.schema import init_database as migrate
    from omni_recovery.db.server import database_url
    from omni_recovery.settings import load_settings

    applied = migrate(database_url(load_settings(workspace)))
    click.echo(
        f"recovery database ready; applied {len(applied)} migration(s): {', '.join(applied) or 'none'}"
    )


@main.command("stop-database")
@workspace_option
@handle_errors
def stop_database(workspace: Path | None) -> None:
    """Stop the workspace's embedded PostgreSQL server (it keeps running between commands).

    The next command that needs the recovery database starts it again; nothing is lost.

    \b
    Example:
      omni-recovery stop-database --workspace /opt/omni-recovery/workspace
    """
    from omni_recovery.db.server import stop_embedded
    from omni_recovery.settings import load_settings

    stopped = stop_embedded(load_settings(workspace))
    click.echo(
        "embedded recovery database stopped" if stopped else "no embedded recovery database was running"
    )


@main.command()
@workspace_option
@click.option(
    "--volume-scale",
    type=click.Choice(["tiny", "small", "medium", "large"]),
    default="small",
    show_default=True,
    help="Size of the demo's volume data.",
)
@handle_errors
def demo(workspace: Path | None, volume_scale: str) -> None:
    """Run the main job on embedded defaults: a demo environment, backed up, and every step after it.

    Everything lands in the workspace folder (default ./.omni-recovery).

    \b
    Example:
      omni-recovery demo --volume-scale tiny
    """
    from omni_recovery.demo_job import run_demo
    from omni_recovery.settings import load_settings

    with progress_bars() as progress:
        run_demo(load_settings(workspace), volume_scale=volume_scale, progress=progress, echo=click.echo)


# Commands of later stages live beside their library code and register below.

from omni_recovery.validate_cli import validate_isos  # noqa: E402

main.add_command(validate_isos)

from omni_recovery.catalog_cli import register_isos, sql  # noqa: E402

main.add_command(register_isos)
main.add_command(sql)

from omni_recovery.plan_cli import plan_generate  # noqa: E402

main.add_command(plan_generate)

from omni_recovery.execute_cli import deploy_directors, execute_plan, status  # noqa: E402

main.add_command(execute_plan)
main.add_command(deploy_directors)
main.add_command(status)


if __name__ == "__main__":
    main()
