"""Writing a backup set: an environment state folder becomes a signed, encrypted set of ISOs.

How it works, in order:
1. Walk the environment and place every file in the ISO kind that carries it, sealed, split
   into parts or linked as it must be, packed into ISOs of at most `max_iso_size` per kind
   (backup.packing).
2. Hash every stored byte once, parts and their whole file in one pass (backup.digests).
3. With the whole `iso_set` known, write each ISO: manifest, backup_info, recovery_index.db,
   recovery.log, signatures, data (backup.iso_contents), streamed by pycdlib to `NAME.partial`
   in the output folder and renamed when whole (backup.output).

What can go wrong: an unreadable or malformed environment raises EnvironmentStateError, and so
does a file that changes between its hashing and the end of its ISO (its inode, size, mtime or
ctime differ, as tar tells "file changed as we read it"): its ISO would not match its manifest.
An output that refuses bytes (disk full) raises RecoveryError naming the ISO. Any failure removes
every ISO this run wrote, so no partial set is left as if whole.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from omni_recovery.backup.digests import hash_entries
from omni_recovery.backup.iso_contents import iso_index, write_iso
from omni_recovery.backup.output import output_folder, refuse_non_empty
from omni_recovery.backup.packing import GiB, Progress, WriterOptions, plan_isos
from omni_recovery.backupset import keys, layout, signing
from omni_recovery.backupset.index_db import RecoveryIndex
from omni_recovery.backupset.manifest import BackupInfo, IsoSetMember
from omni_recovery.envstate.topology import read_topology
from omni_recovery.errors import EnvironmentStateError
from omni_recovery.yaml_text import load_yaml

__all__ = ["BackupSetSummary", "GiB", "Progress", "WriterOptions", "create_backup_set"]


@dataclass(frozen=True)
class BackupSetSummary:
    backup_set_id: str
    output: str
    isos: list[str]
    files: int
    data_bytes: int
    signer_key_id: str


def create_backup_set(
    source: Path,
    output: str,
    *,
    signing_key: Ed25519PrivateKey,
    passphrase: bytes,
    options: WriterOptions | None = None,
    progress: Progress | None = None,
) -> BackupSetSummary:
    """Back up the environment at `source` into the folder or fsspec URL `output`."""
    options = options or WriterOptions()
    options.check()
    out_fs, out_root = fsspec.core.url_to_fs(output)
    refuse_non_empty(out_fs, out_root, output)
    report = progress or (lambda phase, n: None)
    created = (options.created_at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    environment = _read_environment(source)
    set_id = options.backup_set_id or _default_set_id(environment, created)
    topology = read_topology(source)
    kdf = keys.KdfSettings.new()
    key_id, data_key = keys.new_data_key()
    wrapped = keys.wrap_data_key(keys.derive_kek(passphrase, kdf), key_id, data_key)

    with tempfile.TemporaryDirectory(prefix="omni-backup-") as staging_dir:
        staging = Path(staging_dir)
        isos = plan_isos(source, staging, options, data_key, key_id, wrapped, report)
        hash_entries(isos, report)
        members = [
            IsoSetMember(layout.iso_filename(set_id, i.kind, i.sequence), i.kind, i.sequence) for i in isos
        ]
        info = BackupInfo(
            backup_set_id=set_id,
            created_at=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            omnicloud_version=str(environment.get("omnicloud_version", "")),
            source_environment=_source_summary(environment, topology),
            iso_set=members,
            encryption={
                "cipher": keys.ALGORITHM,
                "kdf": "scrypt",
                "kdf_params": {"n": kdf.n, "r": kdf.r, "p": kdf.p},
                "salt": keys.b64(kdf.salt),
                "key_id": key_id,
            },
            signing={"algorithm": "ed25519", "key_id": signing.key_id(signing_key.public_key())},
            format=layout.FORMAT_1_1,
        )
        carried_anywhere = {s.env.placement.component for iso in isos for s in iso.entries}
        with output_folder(output, staging) as place:
            for iso, member in zip(isos, members, strict=True):
                index = iso_index(iso, topology, carried_anywhere)
                write_iso(iso, member.name, info, index, signing_key, staging, place, report)
    return BackupSetSummary(
        backup_set_id=set_id,
        output=output,
        isos=[m.name for m in members],
        files=sum(len(i.entries) for i in isos),
        data_bytes=sum(s.size for i in isos for s in i.entries),
        signer_key_id=info.signing["key_id"],
    )


def _read_environment(source: Path) -> dict[str, Any]:
    path = source / "environment.yaml"
    try:
        document = load_yaml(path.read_bytes())
    except (OSError, yaml.YAMLError) as exc:
        raise EnvironmentStateError(f"{path}: cannot read the environment description: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("name"), str):
        raise EnvironmentStateError(f"{path}: must be a mapping with a name")
    return document


def _default_set_id(environment: dict[str, Any], created: datetime) -> str:
    name = "".join(c if c.isalnum() else "-" for c in environment["name"].lower()).strip("-") or "omnicloud"
    return f"{name[:44]}-{created:%Y%m%dt%H%M%Sz}"


def _source_summary(environment: dict[str, Any], topology: RecoveryIndex) -> dict[str, Any]:
    def count(kind: str) -> int:
        return sum(1 for c in topology.components if c.kind == kind)

    return {
        "name": environment["name"],
        "nodes": len(topology.hardware),
        "directors": count("director"),
        "orchestrators": count("orchestrator"),
        "applications": count("application"),
    }
