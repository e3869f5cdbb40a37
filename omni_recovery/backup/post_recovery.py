"""The first post-recovery backup: the restored environment, gathered from its target roots, backed up.

The restored environment is spread over node roots and storage pool roots; this gathers it into
one environment state folder in the run's workspace (hard links where the roots are local on
the same filesystem, copies otherwise, streamed from SSH roots with their modes and mtimes;
documents shared by every Director node taken once), then writes a new signed, encrypted set with
the normal writer. The gathered folder is removed after.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from omni_recovery.backup.writer import WriterOptions, create_backup_set
from omni_recovery.backupset.signing import load_signing_key
from omni_recovery.targets.driver import TargetRoot

if TYPE_CHECKING:
    from omni_recovery.execute.context import RunContext


def post_recovery_output(recovery: RunContext) -> Path:
    """Where a run's post-recovery backup set is written; its folder name is its set id."""
    set_id = f"{recovery.plan.backup_set_id[:40]}-post-{recovery.tracker.run_id[-6:]}"
    return recovery.settings.workspace / "backups" / set_id


def post_recovery_backup(recovery: RunContext, signing_key: Path, passphrase: bytes) -> str:
    run_folder = recovery.run_folder
    gathered = run_folder / "restored-environment"
    shutil.rmtree(gathered, ignore_errors=True)
    for target in recovery.roots.values():
        gather(target, gathered)
    output = post_recovery_output(recovery)
    set_id = output.name
    if output.exists():
        shutil.rmtree(output)
    try:
        create_backup_set(
            gathered,
            str(output),
            signing_key=load_signing_key(signing_key),
            passphrase=passphrase,
            options=WriterOptions(backup_set_id=set_id),
            progress=recovery.progress,
        )
    finally:
        shutil.rmtree(gathered, ignore_errors=True)
    return str(output)


def gather(target: TargetRoot, into: Path) -> None:
    """Link or copy every entry of a target root into `into`; entries already there are kept."""
    for rel, entry in sorted(target.listing().items()):
        destination = into / rel
        if destination.exists() or destination.is_symlink() or "omni-partial" in rel:
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        if entry.type == "dir":
            destination.mkdir(mode=(entry.mode or 0o755) & 0o7777)
        elif entry.type == "symlink":
            assert entry.target is not None
            os.symlink(entry.target, destination)
        elif not target.is_local:
            target.download(rel, destination)  # streamed, with its mode and mtime
        else:
            try:
                os.link(target.resolve(rel), destination)
            except OSError:  # another filesystem
                target.download(rel, destination)
