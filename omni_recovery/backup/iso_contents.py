"""Writing one ISO of a backup set: its manifest, backup_info, recovery index, recovery log,
signatures and data, streamed by pycdlib (backup.isobuild) to the output folder.

The manifest and backup_info are signed with the set's Ed25519 key; `iso_index()` gives each ISO
the components it carries (system-core holds them all). Once the image is written, its files are
checked to be unchanged since they were hashed (backup.digests).
"""

from __future__ import annotations

import getpass
import hashlib
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from omni_recovery import __version__
from omni_recovery.backup.digests import check_unchanged
from omni_recovery.backup.isobuild import FileWindow, IsoBuilder
from omni_recovery.backup.packing import PlannedIso, Progress, Stored
from omni_recovery.backupset import layout, signing
from omni_recovery.backupset.hashing import sha256_file
from omni_recovery.backupset.index_db import RecoveryIndex, write_index
from omni_recovery.backupset.manifest import BackupInfo, Manifest, ManifestEntry

__all__ = ["iso_index", "write_iso"]


def iso_index(iso: PlannedIso, topology: RecoveryIndex, carried_anywhere: set[str | None]) -> RecoveryIndex:
    """The index of one ISO: the components it carries (those with no files at all go to the first ISO
    of their kind), their dependencies and, for Directors, their hardware. System-core holds everything."""
    files = [(s.path, s.env.placement.component or "") for s in iso.entries]
    if iso.kind == layout.SYSTEM_CORE:
        return RecoveryIndex(topology.components, topology.dependencies, files, topology.hardware)
    carried = {s.env.placement.component for s in iso.entries}
    components = [
        c
        for c in topology.components
        if c.component_id in carried
        or (c.iso_kind == iso.kind and iso.sequence == 1 and c.component_id not in carried_anywhere)
    ]
    ids = {c.component_id for c in components}
    nodes = {c.attributes.get("node") for c in components if c.kind == "director"}
    return RecoveryIndex(
        components=components,
        dependencies=[d for d in topology.dependencies if d.component_id in ids],
        files=files,
        hardware=[h for h in topology.hardware if h.node_id in nodes],
    )


def write_iso(
    iso: PlannedIso,
    name: str,
    info: BackupInfo,
    index: RecoveryIndex,
    signing_key: Ed25519PrivateKey,
    staging: Path,
    place: Callable[[str], Any],
    report: Progress,
) -> None:
    info_bytes = info.to_bytes()
    index_path = staging / f"{name}.recovery_index.db"
    write_index(index_path, index)
    index_sha, index_size = sha256_file(index_path)
    log_bytes = _recovery_log(iso, name, info)
    entries = [
        ManifestEntry(layout.BACKUP_INFO_PATH, len(info_bytes), 0o100644, None, sha256=_sha(info_bytes)),
        ManifestEntry(layout.INDEX_DB_PATH, index_size, 0o100644, None, sha256=index_sha),
        ManifestEntry(layout.RECOVERY_LOG_PATH, len(log_bytes), 0o100644, None, sha256=_sha(log_bytes)),
        *(s.manifest_entry() for s in iso.entries),
    ]
    manifest = Manifest(
        info.backup_set_id, iso.kind, iso.sequence, info.created_at, entries, info.format
    ).to_bytes()
    builder = IsoBuilder(f"{iso.kind[:12]}_{iso.sequence:03d}".upper().replace("-", "_"))
    try:
        builder.add_bytes(layout.MANIFEST_PATH, manifest)
        builder.add_bytes(layout.BACKUP_INFO_PATH, info_bytes)
        builder.add_file(layout.INDEX_DB_PATH, index_path, 0o100644)
        builder.add_bytes(layout.MANIFEST_SIG_PATH, signing_key.sign(manifest))
        builder.add_bytes(layout.BACKUP_INFO_SIG_PATH, signing_key.sign(info_bytes))
        builder.add_bytes(layout.SIGNER_PUB_PATH, signing.public_pem(signing_key.public_key()))
        builder.add_bytes(layout.RECOVERY_LOG_PATH, log_bytes)
        for stored in iso.entries:
            _add_stored(builder, stored)
        with place(name) as out:
            builder.write(out, lambda n: report("write", n))
            check_unchanged(iso.entries, name)
    finally:
        builder.close()


def _add_stored(builder: IsoBuilder, stored: Stored) -> None:
    env, attributes = stored.env, stored.attributes
    if attributes is not None and attributes.hardlink is not None:
        return  # a later name of an inode: in the manifest only, its bytes are its first name's
    _add_content(builder, stored)
    if attributes is not None and attributes.uid is not None and attributes.gid is not None:
        builder.set_owner(
            stored.path, attributes.uid, attributes.gid, stored.links if env.type == "file" else None
        )


def _add_content(builder: IsoBuilder, stored: Stored) -> None:
    env = stored.env
    if env.type == "dir":
        builder.add_directory(stored.path, env.mode)
    elif env.type == "symlink":
        assert env.target is not None
        builder.add_symlink(stored.path, env.target)
    elif stored.window is not None or stored.ranges is not None:
        assert stored.source is not None
        ranges = stored.ranges if stored.ranges is not None else [stored.window or (0, 0)]
        builder.add_stream(stored.path, FileWindow(stored.source, ranges), stored.size, env.mode)
    else:
        assert stored.source is not None
        builder.add_file(stored.path, stored.source, env.mode)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _recovery_log(iso: PlannedIso, name: str, info: BackupInfo) -> bytes:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    who = f"{getpass.getuser()}@{socket.gethostname()}"
    lines = [
        f"{info.created_at} backup {info.backup_set_id} started by {who}",
        f"{now} writer omni-recovery {__version__}",
        f"{now} iso {name}: kind {iso.kind}, sequence {iso.sequence} of set of {len(info.iso_set)} ISOs",
        f"{now} iso {name}: {len(iso.entries)} entries, {sum(s.size for s in iso.entries)} data bytes",
        f"{now} iso {name}: manifest and backup_info signed by {info.signing['key_id']}",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")
