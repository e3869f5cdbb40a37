"""The main job on embedded defaults: a demo environment backed up, then carried through the flow.

Each run makes a new backup set of the (deterministic, reused) demo environment in the
workspace, then takes it through every stage that exists so far.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from omni_recovery.backupset.reader import IsoReader, list_backup_set, unlock_data_key
from omni_recovery.backupset.signing import TrustedSigners, generate_signing_key, load_signing_key
from omni_recovery.backupset.writer import BackupSetSummary, WriterOptions, create_backup_set
from omni_recovery.settings import Settings

# Small enough that the demo's volume data spans several ISOs and its largest files are chunked.
DEMO_MAX_ISO = 256 * 1024**2
DEMO_CHUNK = 64 * 1024**2

Echo = Callable[[str], None]
Progress = Callable[[str, int], None]


def run_demo(settings: Settings, *, volume_scale: str, progress: Progress, echo: Echo) -> BackupSetSummary:
    from omni_recovery.db.schema import init_database
    from omni_recovery.db.server import database_url
    from omni_recovery.envstate.demo import DemoOptions, write_demo_environment

    demo_root = settings.workspace / "demo"
    env = demo_root / f"env-{volume_scale}"
    if not env.exists():
        summary = write_demo_environment(
            env, DemoOptions(volume_scale=volume_scale), progress=lambda n: progress("write", n)
        )
        echo(f"1. demo environment written to {env}: {summary}")
    else:
        echo(f"1. demo environment reused from {env}")
    key_path = demo_root / "keys" / "demo-signing.key"
    if not key_path.exists():
        generate_signing_key(key_path)
    signer = load_signing_key(key_path)
    passphrase = _demo_passphrase(demo_root / "keys" / "passphrase")
    set_id = f"demo-{datetime.now(UTC):%Y%m%dt%H%M%Sz}"
    backup = create_backup_set(
        env,
        str(demo_root / "backups" / set_id),
        signing_key=signer,
        passphrase=passphrase,
        options=WriterOptions(backup_set_id=set_id, max_iso_size=DEMO_MAX_ISO, chunk_size=DEMO_CHUNK),
        progress=progress,
    )
    echo(f"2. backup set {backup.backup_set_id}: {len(backup.isos)} ISOs in {backup.output}")
    applied = init_database(database_url(settings))
    echo(f"3. recovery database ready ({len(applied)} migration(s) applied now)")
    files = read_back(backup.output, TrustedSigners.from_specs([str(key_path) + ".pub"]), passphrase)
    echo(f"4. read back: every signature trusted, {files} files verified and decrypted where sealed")
    return backup


def _demo_passphrase(path: Path) -> bytes:
    """$OMNI_RECOVERY_PASSPHRASE, else a random one kept (0600) in the demo folder."""
    if os.environ.get("OMNI_RECOVERY_PASSPHRASE"):
        return os.environ["OMNI_RECOVERY_PASSPHRASE"].encode("utf-8")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(24))
    return path.read_bytes().strip()


def read_back(location: str, trusted: TrustedSigners, passphrase: bytes) -> int:
    """Open every ISO of a set, check its signatures and read every file through the verifying reader."""
    members = list_backup_set(location)
    readers = [IsoReader(m.url) for m in members]
    try:
        data_key = unlock_data_key(next(r for r in readers if r.manifest.kind == "system-core"), passphrase)
        count = 0
        for reader in readers:
            reader.verify_signatures(trusted)
            for entry in reader.manifest.files:
                if entry.type == "file":
                    for _ in reader.plaintext(entry, data_key):
                        pass
                    count += 1
        return count
    finally:
        for reader in readers:
            reader.close()
