"""`init-database` and `stop-database`: the recovery database of a workspace."""

from __future__ import annotations

from pathlib import Path

import click

from omni_recovery.cli.options import handle_errors, workspace_option


@click.command("init-database")
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


@click.command("stop-database")
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
