"""`omni-recovery validate-isos`: parse options, call the checker, print and store its report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from omni_recovery.backupset.signing import trusted_specs
from omni_recovery.cli.options import (
    absolute_location_callback,
    fail,
    passphrase_option,
    progress_bars,
    read_passphrase,
    trusted_key_option,
    workspace_option,
)
from omni_recovery.errors import RecoveryError


@click.command("validate-isos")
@click.option(
    "--path",
    "location",
    default=None,
    callback=absolute_location_callback,
    help="Folder or fsspec URL holding the set's ISO files (without it: the registered set).",
)
@click.option(
    "--backup-set-id",
    default=None,
    help="Without --path: which registered set to validate (default: the most recently registered).",
)
@click.option(
    "--deep",
    is_flag=True,
    help="Also hash every byte, reassemble chunked files and authenticate encrypted files.",
)
@click.option(
    "--subset",
    default=None,
    metavar="K/N|auto/N",
    help="With --deep: hash only slice K of N of the set's stored bytes; auto/N takes the slice the "
    "rotation verified longest ago, so N runs read every byte (see status --verification).",
)
@trusted_key_option
@passphrase_option
@click.option(
    "--parallel-factor",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Threads hashing at once (across ISOs and files).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the report as JSON to this file.",
)
@click.option(
    "--store/--no-store",
    default=True,
    show_default=True,
    help="Store the report in the recovery database.",
)
@workspace_option
def validate_isos(
    location: str | None,
    backup_set_id: str | None,
    deep: bool,
    subset: str | None,
    trusted_keys: tuple[str, ...],
    passphrase_file: Path | None,
    parallel_factor: int,
    report_path: Path | None,
    store: bool,
    workspace: Path | None,
) -> None:
    """Check that a backup set is whole, authentic and safe to restore from.

    Prints every problem with its severity, ISO, path, expected and found values, and stores the
    report in the recovery database. Exits 0 only when no blocking check fails. Nothing is
    restored or written besides the report. Without --path, validates the set `register-isos`
    recorded (--backup-set-id, else the most recently registered), in the folder it came from.

    \b
    Example:
      export OMNI_RECOVERY_PASSPHRASE='correct horse battery staple'
      omni-recovery validate-isos --path ./backups/set1 --deep \\
          --trusted-key ./keys/backup-signing.key.pub --report ./validation.json
    """
    try:
        _pin_registered_hosts(workspace)
        if location is None:
            backup_set_id, location = _registered_location(backup_set_id, workspace)
        elif backup_set_id is not None:
            raise RecoveryError("--backup-set-id chooses a registered set: give it without --path")
        else:
            backup_set_id = _registered_at(location, workspace)
        in_dagster = backup_set_id if deep and store else None
        passed = _validate(
            location,
            deep,
            subset,
            trusted_keys,
            passphrase_file,
            parallel_factor,
            report_path,
            in_dagster,
            store,
            workspace,
        )
    except RecoveryError as exc:
        fail(exc)
    sys.exit(0 if passed else 1)


def _pin_registered_hosts(workspace: Path | None) -> None:
    from omni_recovery.register.ssh_hosts import pin_registered_hosts
    from omni_recovery.settings import load_settings

    pin_registered_hosts(load_settings(workspace).workspace)


def _registered_location(backup_set_id: str | None, workspace: Path | None) -> tuple[str, str]:
    """The registered set (named, else the most recently registered) and its folder, said aloud."""
    from omni_recovery.register.registered_sets import registered_set_location
    from omni_recovery.settings import load_settings

    set_id, folder = registered_set_location(load_settings(workspace), backup_set_id)
    click.echo(f"validating registered backup set {set_id} in {folder}")
    return set_id, folder


def _registered_at(location: str, workspace: Path | None) -> str | None:
    from omni_recovery.register.registered_sets import registered_set_at
    from omni_recovery.settings import load_settings

    return registered_set_at(load_settings(workspace), location)


def _validate(
    location: str,
    deep: bool,
    subset: str | None,
    trusted_keys: tuple[str, ...],
    passphrase_file: Path | None,
    parallel_factor: int,
    report_path: Path | None,
    in_dagster: str | None,
    store: bool,
    workspace: Path | None,
) -> bool:
    """Validate and print; `in_dagster`: the registered set's id, deep-validated as a `validate_set` run."""
    from omni_recovery.backupset.signing import TrustedSigners
    from omni_recovery.settings import load_settings
    from omni_recovery.validate import validate

    trusted = TrustedSigners.from_specs(trusted_specs(trusted_keys))
    passphrase = read_passphrase(passphrase_file, required=deep) if deep else None
    chosen = _slice(subset, deep, location, workspace) if subset else None
    with progress_bars() as progress:
        if in_dagster is not None and passphrase is not None and chosen is None:
            from pipelines.validate_runner import validate_registered_set

            settings = load_settings(workspace)
            report = validate_registered_set(
                settings, in_dagster, trusted, passphrase, parallel_factor=parallel_factor, progress=progress
            )
        else:
            in_dagster = None  # a slice is validated here and stored below, never as the whole set's run
            report = validate(
                location,
                trusted,
                passphrase,
                deep=deep,
                parallel_factor=parallel_factor,
                progress=progress,
                subset=chosen,
            )
    click.echo(report.to_text(), nl=False)
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(report.to_json_text(), encoding="utf-8")
    if in_dagster is not None:
        click.echo(
            f"stored as validation run {_stored_run(in_dagster, workspace)} (dagster job validate_set)"
        )
    elif store:
        _store(report, workspace)
    return report.passed


def _stored_run(backup_set_id: str, workspace: Path | None) -> str | None:
    from omni_recovery.db.connection import connect
    from omni_recovery.db.server import database_url
    from omni_recovery.settings import load_settings
    from omni_recovery.validate import latest_deep_run

    with connect(database_url(load_settings(workspace))) as conn:
        return latest_deep_run(conn, backup_set_id)


def _store(report: Any, workspace: Path | None) -> None:
    from omni_recovery.db.connection import connect
    from omni_recovery.db.schema import init_database
    from omni_recovery.db.server import database_url
    from omni_recovery.settings import load_settings
    from omni_recovery.validate import store

    url = database_url(load_settings(workspace))
    init_database(url)
    with connect(url) as conn:
        run_id = store(conn, report)
        if report.subset is not None:
            from omni_recovery.practice.rotation import record_slice

            record_slice(conn, report)
    click.echo(f"stored as validation run {run_id}")


def _slice(subset: str, deep: bool, location: str, workspace: Path | None) -> Any:
    """The slice --subset names; for auto/N, the one the set's rotation verified longest ago."""
    from omni_recovery.practice.rotation import next_slice_of, parse_subset
    from omni_recovery.settings import load_settings
    from omni_recovery.validate.deep import Slice

    if not deep:
        raise RecoveryError("--subset chooses a slice of the deep check: give it with --deep")
    index, count = parse_subset(subset)
    if index is None:
        index = next_slice_of(location, count, load_settings(workspace))
    click.echo(f"verifying slice {index}/{count} of the set's stored bytes")
    return Slice(index, count)
