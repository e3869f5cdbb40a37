"""The steps that restore a component's files: Directors, Orchestrators, services, volumes, applications.

A step writes the layout files of its component (transforms/target_layout.py) root by root: new
content (rewritten documents) is written whole and atomically; stored files go through the
verifying file restorer (restorer/files.py), which skips the files this run recorded as verified
and keeps those put in place but not yet recorded when their size and digest are right. Verified
files are recorded in batches (one commit each). A Director's step also writes the run's new CA
and the node's certificate and key. A volume goes only into an empty folder or one holding only
what its restore writes: anything else there fails the step, naming it.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

from omni_recovery.backupset.manifest import ManifestEntry
from omni_recovery.backupset.reader import IsoReader
from omni_recovery.envstate.model import env_path
from omni_recovery.errors import RecoveryError, some_of
from omni_recovery.execute.context import RunContext
from omni_recovery.execute.options import Progress, StepOutcome
from omni_recovery.execute.tracking import SUCCEEDED, RecoveryTracker
from omni_recovery.restorer.files import RestoredFile, RestoreItem, restore_files
from omni_recovery.targets.driver import PARTIAL_SUFFIX
from transforms.plan import Step
from transforms.target_layout import TargetFile, node_root

STEP_PROGRESS_SECONDS = 2.0
# Verified files are recorded in batches of this many files or bytes (one commit each). A file
# renamed into place but not yet recorded when the process dies is found whole, by its digest, and
# kept by the next run (restore_files); the byte bound keeps that re-reading short.
RECORD_FILES = 200
RECORD_BYTES = 32 << 20


class StepProgress:
    """A step's restore progress: passed on to the caller's callback, and the bytes restored so far
    recorded on the running step every STEP_PROGRESS_SECONDS, so that `status` shows a long volume
    step advancing (restore_files reports a big file every 64 MiB)."""

    def __init__(self, tracker: RecoveryTracker, step_id: str, forward: Progress) -> None:
        self.tracker, self.step_id, self.forward = tracker, step_id, forward
        self._lock = threading.Lock()
        self._bytes = 0
        self._recorded_at = time.monotonic()

    def __call__(self, phase: str, amount: int) -> None:
        self.forward(phase, amount)
        if phase != "restore":
            return
        with self._lock:
            self._bytes += amount
            if time.monotonic() - self._recorded_at < STEP_PROGRESS_SECONDS:
                return
            self._recorded_at = time.monotonic()
            total = self._bytes
        self.tracker.step_progress(self.step_id, total)


def restore_component(context: RunContext, step: Step) -> StepOutcome:
    deadline = time.monotonic() + step.timeout_s
    files = context.files_by_step.get(step.id, [])
    if step.component in context.layout.volume_roots:
        _refuse_foreign_entries(context, step.component, files)
    if step.id.startswith("director/"):
        files = files + _certificate_files(context, step)
    by_root: dict[str, list[TargetFile]] = defaultdict(list)
    for target_file in files:
        by_root[target_file.root].append(target_file)
    progress = StepProgress(context.tracker, step.id, context.progress)
    not_applied: list[str] = []
    written = sum(
        _restore_group(context, root, group, deadline, progress, not_applied)
        for root, group in by_root.items()
    )
    detail: dict[str, Any] = {"files": len(files), "roots": sorted(by_root)}
    if not_applied:  # what the target could not take (owners, xattrs), per file: the report lists it
        detail["not_applied"] = not_applied
    return StepOutcome(SUCCEEDED, written, detail)


def _refuse_foreign_entries(context: RunContext, volume: str, files: list[TargetFile]) -> None:
    """A volume goes into an empty folder, or one holding only what its restore writes (a resumed
    or repeated run): anything else there (an older system's data, another recovery's) would
    end up mixed with the restored data, which no check of the restored files would notice."""
    root, folder = context.layout.volume_roots[volume]
    ours = {f.relpath for f in files if f.root == root}
    target = context.target(root)
    foreign = sorted(  # folders hold nothing of their own; a killed run's partial files are ours
        path
        for path, entry in target.listing(under=folder).items()
        if entry.type != "dir" and path not in ours and not path.endswith(PARTIAL_SUFFIX)
    )
    if foreign:
        raise RecoveryError(
            f"{target.url}: {folder} already holds what {volume} does not ({some_of(foreign)}): "
            "restoring into it would mix that with the volume's data. Move it away, or give the "
            "volume another path in the plan, then run execute-plan again"
        )


def _restore_group(
    context: RunContext,
    root: str,
    group: list[TargetFile],
    deadline: float,
    progress: StepProgress,
    not_applied: list[str],
) -> int:
    """Write the files of `group` under `root`; the bytes written."""
    target = context.target(root)
    written = 0
    items: list[RestoreItem] = []
    for target_file in group:
        if target_file.content is not None:
            target.write_bytes_atomic(
                target_file.relpath, target_file.content, mode=target_file.mode & 0o7777
            )
            written += len(target_file.content)
        else:
            items.extend(_restore_items(context, target_file))
    if items:
        written += _restore_stored(context, root, items, deadline, progress, not_applied)
    return written


def _restore_stored(
    context: RunContext,
    root: str,
    items: list[RestoreItem],
    deadline: float,
    progress: StepProgress,
    not_applied: list[str],
) -> int:
    """Restore stored files through the verifying restorer, recording them as verified in batches."""
    verified = context.tracker.verified_files(root)
    recorded: list[tuple[str, str | None, int]] = []
    pending = [0]  # the bytes of `recorded`

    def on_done(done: RestoredFile) -> None:
        recorded.append((done.path, done.sha256, done.size))
        pending[0] += done.size
        if len(recorded) >= RECORD_FILES or pending[0] >= RECORD_BYTES:
            context.tracker.files_verified(root, recorded)
            recorded.clear()
            pending[0] = 0

    try:
        summary = restore_files(
            items,
            context.target(root),
            context.data_key,
            already_done=verified.__contains__,
            on_done=on_done,
            parallel=context.options.parallel,
            progress=progress,
            deadline=deadline,
            cancelled=context.cancel,
            numeric_owner=context.options.numeric_owner,
        )
    finally:
        context.tracker.files_verified(root, recorded)
    not_applied += (f"{root}: {line}" for line in summary.not_applied)
    return summary.bytes_written


def _restore_items(context: RunContext, target_file: TargetFile) -> list[RestoreItem]:
    assert target_file.source is not None
    found = context.entries_by_env_path.get(target_file.source)
    if not found:
        raise RecoveryError(f"{target_file.source}: the layout names a file the backup set does not hold")
    items = []
    for reader, entry in found:
        if entry.hardlink is not None:
            items.extend(_link_items(context, target_file, reader, entry))
            continue
        extents = reader.listing[entry.path].extents if entry.type == "file" else None
        items.append(
            RestoreItem.from_manifest(
                reader.url, reader.name, entry, path=target_file.relpath, extents=extents
            )
        )
    return items


def _link_items(
    context: RunContext, target_file: TargetFile, reader: IsoReader, entry: ManifestEntry
) -> list[RestoreItem]:
    """A later name of an inode: its first name's stored bytes, a link to it where that lands in
    the same restore (restore_files decides), else a file of its own."""
    first = context.target_of_source.get(env_path(entry.hardlink or ""))
    if first is None:
        raise RecoveryError(
            f"{target_file.source}: hard link to {entry.hardlink}, which the layout does not restore"
        )
    link = RestoreItem.from_manifest(reader.url, reader.name, entry, path=target_file.relpath, extents=None)
    return [link.link_item(item) for item in _restore_items(context, first)]


def _certificate_files(context: RunContext, step: Step) -> list[TargetFile]:
    """The new CA and this node's certificate and key (the backup's CA certificate is restored
    as keys/old-ca.crt: no backed-up file is placed where these go)."""
    assert step.node is not None
    bundle, root = context.certificates, node_root(step.node)
    own = bundle.nodes[step.node]
    return [
        TargetFile(root, "keys/ca.crt", None, bundle.ca_cert_pem, 0o100644, "system:core"),
        TargetFile(root, "keys/ca.key", None, bundle.ca_key_pem, 0o100600, "system:core"),
        TargetFile(root, f"keys/{step.node}.crt", None, own.cert_pem, 0o100644, "system:core"),
        TargetFile(root, f"keys/{step.node}.key", None, own.key_pem, 0o100600, "system:core"),
    ]
