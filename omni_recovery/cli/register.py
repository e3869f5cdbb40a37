"""Commands of the catalog stage: `register-isos` (run the ingest and catalog assets) and `sql`.

Both only parse options and call the library: `pipelines.runner.register_isos` and
`omni_recovery.register.catalog_sql`. Dagster is imported only when `register-isos` runs, so other
commands stay quick to start.

What can go wrong: every RecoveryError (a foreign file in the set folder, a corrupt ISO, an
unreachable database, a bad query) is printed as one line naming what failed, with exit status 1.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from omni_recovery.cli.options import (
    absolute_location_callback,
    handle_errors,
    ssh_identity_option,
    trusted_key_option,
    workspace_option,
)

if TYPE_CHECKING:
    from omni_recovery.targets.ssh_session import SshAccess

__all__ = ["register_isos", "sql"]


@click.command("register-isos")
@click.option(
    "--path",
    "location",
    required=True,
    callback=absolute_location_callback,
    help="Backup set folder or URL (file://, s3://, ssh://user@host[:port]/path ...).",
)
@click.option(
    "--ssh-host-key",
    default=None,
    help="For an ssh:// --path: the host's public key as in known_hosts (ssh-ed25519 AAAA...); a host "
    "that cannot prove it is refused before anything is read.",
)
@ssh_identity_option(
    "For an ssh:// --path: the private key to log in with (else the SSH agent and ~/.ssh's keys)."
)
@trusted_key_option
@workspace_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
@handle_errors
def register_isos(
    location: str,
    ssh_host_key: str | None,
    ssh_identity: Path | None,
    trusted_keys: tuple[str, ...],
    workspace: Path | None,
    quiet: bool,
) -> None:
    """Register a backup set: ingest every ISO and load the catalog (Parquet + PostgreSQL).

    Runs the same Dagster assets as the UI (one partition per ISO) with their blocking checks,
    records the runs in the workspace's Dagster instance, and prints a summary with the checks'
    results. A failing check registers nothing. The signer is judged against the trusted keys
    given; without any, each ISO's check says in a warning that it was not (validate-isos judges
    it). Registering a set again replaces its rows; other sets stay beside it.

    A set on another machine is read over SFTP (ssh://user@host[:port]/path) by range: only the
    parts of each ISO the catalog needs cross the network. The host's key (and the path of the
    --ssh-identity file) is kept in the workspace: the other commands read the set from the host
    that proves the same key, without asking again.

    \b
    Example:
      omni-recovery register-isos --path ./backups/set1 --trusted-key ./keys/backup-signing.key.pub
      omni-recovery register-isos --path ssh://omni@store.example/srv/isos/set1 \\
          --ssh-host-key "$(cat store_host_ed25519_key.pub)" --trusted-key ./keys/backup-signing.key.pub
      omni-recovery sql "SELECT kind, count(*) FROM isos GROUP BY kind"
    """
    from tqdm import tqdm

    from omni_recovery.backupset.reader import list_backup_set
    from omni_recovery.settings import load_settings

    access = _pin_ssh_host(location, ssh_host_key, ssh_identity)
    settings = load_settings(workspace)
    total = len(list_backup_set(location))
    warnings.filterwarnings("ignore", module="dagster")
    logging.getLogger("dagster").setLevel(logging.WARNING)
    from pipelines.runner import CATALOG_STEPS, QUIET_CONSOLE
    from pipelines.runner import register_isos as run_register

    bar: Any = tqdm(total=total + CATALOG_STEPS, unit="step", file=sys.stderr, disable=quiet or None)

    def progress(phase: str, amount: int) -> None:
        bar.set_description(f"{phase:>8}")
        bar.update(amount)

    try:
        summary = run_register(
            location, settings, progress=progress, log_level=QUIET_CONSOLE, trusted_keys=trusted_keys
        )
    finally:
        bar.close()
    if access is not None:
        from omni_recovery.register.ssh_hosts import record_ssh_host

        record_ssh_host(settings.workspace, location, access)
    for line in summary.lines():
        click.echo(line)
    click.echo(f"catalog:       {settings.catalog} (Parquet) and PostgreSQL schema omni")


def _pin_ssh_host(location: str, host_key: str | None, identity: Path | None) -> SshAccess | None:
    """Let an ssh:// location be read, from the host that proves `host_key` only; its access."""
    from omni_recovery.errors import RecoveryError
    from omni_recovery.urls import is_ssh_url

    if not is_ssh_url(location):
        if host_key or identity:
            raise RecoveryError("--ssh-host-key and --ssh-identity are for an ssh:// --path")
        return None
    if not host_key:
        raise RecoveryError(
            f"{location}: give the host's public key with --ssh-host-key (as in its known_hosts line, "
            "e.g. from `ssh-keyscan -t ed25519 HOST`, checked with the host's admin)"
        )
    from omni_recovery.targets.ssh_fs import allow_ssh_location
    from omni_recovery.targets.ssh_session import SshAccess

    access = SshAccess(host_key, str(identity.absolute()) if identity else None)
    allow_ssh_location(location, access)
    return access


@click.command()
@click.argument("query")
@workspace_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format (json: one object per line).",
)
@handle_errors
def sql(query: str, workspace: Path | None, fmt: str) -> None:
    """Run SQL (DuckDB) over the catalog: isos, files, components, dependencies, hardware, ...

    Every catalog table is a view; per-ISO ingest tables too (iso_manifest, iso_directory_records).
    The same catalog tables are in PostgreSQL (schema omni) for psql and BI tools.

    \b
    Example:
      omni-recovery sql "SELECT iso_name, extent_offset, size FROM files WHERE path LIKE '%app.yaml'"
      omni-recovery sql "SELECT * FROM dependencies WHERE component_id = 'application:billing'" --format json
    """
    from omni_recovery.register.catalog_sql import format_result, run_query
    from omni_recovery.settings import load_settings

    settings = load_settings(workspace)
    columns, rows = run_query(str(settings.catalog), query)
    click.echo(format_result(columns, rows, fmt))
