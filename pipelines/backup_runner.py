"""What `backup create` calls: the `create_backup` job, as a UI launch runs it.

How it works: `create_backup` runs the named job `create_backup` (the `backup_set` asset) in this
process, in the workspace's Dagster instance, with a `backup_writer` resource holding what the
command line was given (source, output, signing key, passphrase, sizes, progress bars), so the UI
shows every set the command line wrote as a materialisation of `backup_set`, with its metadata.
A launch from the UI uses `BackupWriterResource` (pipelines.backup_resource) instead.

What can go wrong: the writer's own refusal (BackupError, naming the folder or file) is raised, not
Dagster's wrapper; the failed run stays in the instance for the UI.
"""

from __future__ import annotations

from omni_recovery.settings import Settings
from pipelines.backup_resource import CommandLineBackup
from pipelines.definitions import build_definitions
from pipelines.runner import QUIET_CONSOLE, dagster_instance, run_job, user_error

__all__ = ["create_backup"]


def create_backup(settings: Settings, given: CommandLineBackup, *, log_level: str = QUIET_CONSOLE) -> str:
    """Write the set `given` describes as a run of `create_backup`; the Dagster run's id."""
    settings.ensure_folders()
    defs = build_definitions(settings, overrides={"backup_writer": given})
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    try:
        return run_job(defs, "create_backup", dagster_instance(settings), run_config=run_config)
    except Exception as exc:
        raise user_error(exc, settings.dagster_home) from exc
