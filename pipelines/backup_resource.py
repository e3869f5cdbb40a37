"""The `backup_writer` resource of the `create_backup` job: what the command line was given, or the
launchpad's configuration.

`CommandLineBackup` holds what `backup create` was given (source, output, signing key, passphrase,
sizes, progress bars) and keeps the summary of what it wrote. `BackupWriterResource` is the default,
for a launch from the UI: source, output and signing key configured in the launchpad, the passphrase
from the code location's environment (OMNI_RECOVERY_PASSPHRASE), never from run config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dagster import ConfigurableResource

from omni_recovery.backup.writer import BackupSetSummary, Progress, WriterOptions, create_backup_set
from omni_recovery.backupset.signing import load_signing_key
from omni_recovery.errors import RecoveryError
from omni_recovery.settings import code_location_passphrase

__all__ = ["BackupWriterResource", "CommandLineBackup"]


@dataclass
class CommandLineBackup:
    """The `backup_writer` of a run the command line starts; keeps what was written for it to print."""

    source: Path
    output: str
    signing_key: Path
    passphrase: bytes
    options: WriterOptions
    progress: Progress | None = None
    written: BackupSetSummary | None = None

    def write(self) -> BackupSetSummary:
        self.written = create_backup_set(
            self.source,
            self.output,
            signing_key=load_signing_key(self.signing_key),
            passphrase=self.passphrase,
            options=self.options,
            progress=self.progress,
        )
        return self.written


class BackupWriterResource(ConfigurableResource):
    """A backup set to write from the UI: `source`, `output` and `signing_key` are required."""

    source: str = ""
    output: str = ""
    signing_key: str = ""
    max_iso_size: int = WriterOptions.max_iso_size
    chunk_size: int = WriterOptions.chunk_size
    backup_set_id: str = ""

    def write(self) -> BackupSetSummary:
        if not (self.source and self.output and self.signing_key):
            raise RecoveryError("configure resources.backup_writer.config: source, output and signing_key")
        options = WriterOptions(
            backup_set_id=self.backup_set_id or None,
            max_iso_size=self.max_iso_size,
            chunk_size=self.chunk_size,
        )
        given = CommandLineBackup(
            Path(self.source), self.output, Path(self.signing_key), code_location_passphrase(), options
        )
        return given.write()
