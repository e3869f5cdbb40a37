"""`keygen` (a signing key for backup sets) and `backup create` (a signed, encrypted set of ISOs)."""

from __future__ import annotations

from pathlib import Path

import click

from omni_recovery.cli.options import (
    SizeType,
    handle_errors,
    passphrase_option,
    progress_bars,
    read_passphrase,
    workspace_option,
)


@click.command()
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


@click.group()
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
@workspace_option
@handle_errors
def backup_create(
    source: Path,
    output: str,
    signing_key: Path,
    passphrase_file: Path | None,
    max_iso_size: int,
    chunk_size: int,
    backup_set_id: str | None,
    workspace: Path | None,
) -> None:
    """Back up an environment state folder into a signed, encrypted set of ISOs (a run of the Dagster
    job `create_backup` in the workspace, so the UI shows it).

    \b
    Example:
      export OMNI_RECOVERY_PASSPHRASE='correct horse battery staple'
      omni-recovery backup create --source ./env --output ./backups/set1 \\
          --signing-key ./keys/backup-signing.key --max-iso-size 700M --chunk-size 256M
    """
    from omni_recovery.backup.writer import WriterOptions
    from omni_recovery.settings import load_settings
    from pipelines.backup_resource import CommandLineBackup
    from pipelines.backup_runner import create_backup

    passphrase = read_passphrase(passphrase_file)
    assert passphrase is not None
    options = WriterOptions(backup_set_id=backup_set_id, max_iso_size=max_iso_size, chunk_size=chunk_size)
    with progress_bars() as progress:
        given = CommandLineBackup(source, output, signing_key, passphrase, options, progress)
        create_backup(load_settings(workspace), given)
    summary = given.written
    assert summary is not None, "the backup_set asset did not write"
    click.echo(
        f"backup set {summary.backup_set_id}: {len(summary.isos)} ISOs, {summary.files} entries, "
        f"{summary.data_bytes} data bytes in {summary.output}; signed by {summary.signer_key_id}"
    )
