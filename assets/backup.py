"""The backup set as an asset, so that `backup create` is a run of a named job the UI shows.

How it works: `backup_set` asks its `backup_writer` resource to write the set (the command line passes
one holding what it was given: source, output, signing key, passphrase, sizes, progress bars; a UI
launch gets `pipelines.backup_resource.BackupWriterResource`, configured in the launchpad, with the
passphrase from the code location's environment) and records what was written as metadata: the set
id, where it is (a path and a link), its ISOs, entries, data bytes and signer. The job is
`create_backup` (group `backup`).

What can go wrong: whatever `omni_recovery.backup.writer.create_backup_set` refuses (a source that
is not an environment folder, an output folder that is not empty, sizes that do not fit) fails the
run with the writer's own error, and nothing half-written is left under a final name.
"""

from typing import Any, Protocol

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from omni_recovery.backup.writer import BackupSetSummary

__all__ = ["BACKUP_ASSETS", "BackupWriter", "backup_set"]


class BackupWriter(Protocol):
    """What `backup_set` needs from its `backup_writer` resource."""

    def write(self) -> BackupSetSummary: ...


@asset(
    group_name="backup",
    required_resource_keys={"backup_writer"},
    description="A signed, encrypted backup set of an environment state folder (resources.backup_writer).",
)
def backup_set(context: AssetExecutionContext) -> MaterializeResult:
    writer: BackupWriter = context.resources.backup_writer
    summary = writer.write()
    context.log.info(f"backup set {summary.backup_set_id}: {len(summary.isos)} ISOs in {summary.output}")
    metadata: dict[str, Any] = {
        "backup_set_id": summary.backup_set_id,
        "output": MetadataValue.path(summary.output),
        "isos": MetadataValue.json(summary.isos),
        "entries": summary.files,
        "data_bytes": summary.data_bytes,
        "signer_key_id": summary.signer_key_id,
    }
    return MaterializeResult(metadata=metadata)


BACKUP_ASSETS = [backup_set]
