"""The main job on embedded defaults: a demo environment backed up and recovered end to end.

Each run makes a new backup set of the demo environment in the workspace (made once, then reused;
deterministic but for billing-db's real PostgreSQL data folder, see envstate.database_volume),
registers it in the catalog (Dagster assets, PostgreSQL), validates it deeply (stored in the
recovery database), plans its recovery onto a new inventory of nodes under the workspace (as many
nodes as before, each a little larger), executes the plan through the restore assets, each stage
as the named Dagster job its command runs (the UI shows them as it would a recovery by hand), and ends
with the report and the first post-recovery backup; then PostgreSQL is started on billing-db's
restored volume and its rows are read back.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from omni_recovery.backup.writer import BackupSetSummary, WriterOptions
from omni_recovery.backupset.signing import TrustedSigners, generate_signing_key
from omni_recovery.errors import RecoveryError
from omni_recovery.settings import Settings
from pipelines.backup_resource import CommandLineBackup
from pipelines.backup_runner import create_backup
from transforms.plan import plan_from_yaml, step_count

# Small enough that the demo's volume data spans several ISOs and its largest files are chunked.
DEMO_MAX_ISO = 256 * 1024**2
DEMO_CHUNK = 64 * 1024**2

Echo = Callable[[str], None]
Progress = Callable[[str, int], None]


def run_demo(settings: Settings, *, volume_scale: str, progress: Progress, echo: Echo) -> BackupSetSummary:
    from omni_recovery.envstate.demo import DemoOptions, write_demo_environment

    demo_root = settings.workspace / "demo"
    env = demo_root / f"env-{volume_scale}"
    if not env.exists():
        options = DemoOptions(volume_scale=volume_scale, database=True)
        summary = write_demo_environment(env, options, progress=lambda n: progress("write", n))
        echo(f"1. demo environment written to {env}: {summary}")
    else:
        echo(f"1. demo environment reused from {env}")
    key_path = demo_root / "keys" / "demo-signing.key"
    if not key_path.exists():
        generate_signing_key(key_path)
    passphrase = _demo_passphrase(demo_root / "keys" / "passphrase")
    set_id = f"demo-{datetime.now(UTC):%Y%m%dt%H%M%Sz}"
    given = CommandLineBackup(
        env,
        str(demo_root / "backups" / set_id),
        key_path,
        passphrase,
        WriterOptions(backup_set_id=set_id, max_iso_size=DEMO_MAX_ISO, chunk_size=DEMO_CHUNK),
        progress,
    )
    create_backup(settings, given)
    backup = given.written
    assert backup is not None, "the backup_set asset did not write"
    echo(f"2. backup set {backup.backup_set_id}: {len(backup.isos)} ISOs in {backup.output}")
    _recover(settings, backup, env, key_path, passphrase, demo_root / "recovery" / set_id, echo)
    return backup


def _recover(
    settings: Settings,
    backup: BackupSetSummary,
    env: Path,
    key_path: Path,
    passphrase: bytes,
    folder: Path,
    echo: Echo,
) -> None:
    """Each stage as the named Dagster job its command runs, so the UI shows the demo as it would a
    recovery driven by hand: ingest_isos, build_catalog, validate_set, plan_recovery, restore."""
    from omni_recovery.db.schema import init_database
    from omni_recovery.db.server import database_url
    from omni_recovery.execute.options import ExecuteOptions
    from pipelines.plan_runner import plan_registered_set
    from pipelines.recovery_runner import execute_recovery
    from pipelines.runner import QUIET_CONSOLE, register_isos
    from pipelines.validate_runner import validate_registered_set

    init_database(database_url(settings))
    trusted = f"{key_path}.pub"
    registered = register_isos(backup.output, settings, log_level=QUIET_CONSOLE, trusted_keys=(trusted,))
    echo(f"   registered: {registered.components} components, {registered.files} files in the catalog")
    signers = TrustedSigners.from_specs([trusted])
    report = validate_registered_set(settings, backup.backup_set_id, signers, passphrase)
    if not report.passed:
        raise RecoveryError("the demo backup failed validation:\n" + report.to_text())
    echo(f"3. deep validation: {report.to_text().splitlines()[0]}")
    planned = plan_registered_set(settings, backup.backup_set_id, _demo_inventory(env, folder), "basic")
    plan = plan_from_yaml(planned.plan_path.read_text(encoding="utf-8"), source=str(planned.plan_path))
    echo(f"4. recovery plan: {step_count(plan)}, {len(plan.adaptations)} adaptations: {planned.plan_path}")
    summary = execute_recovery(
        settings,
        ExecuteOptions(planned.plan_path, signing_key=key_path),
        passphrase,
        echo=lambda line: echo(f"   {line}"),
    )
    echo(f"5. recovered onto {folder / 'infra'} (run {summary.run_id})")
    echo(f"   {_database_check(env, folder / 'infra')}")
    echo(f"6. report: {summary.report}")
    echo(f"7. post-recovery backup: {summary.post_recovery_backup}")


def _database_check(env: Path, infra: Path) -> str:
    """Whether PostgreSQL starts on billing-db's restored volume and gives back every row written."""
    from omni_recovery.envstate import database_volume

    name = database_volume.APP[0]
    if not (env / "volumes" / name).is_dir():
        return (
            f"{name}: not in the reused demo environment {env} (remove it to make one with a real database)"
        )
    restored = [p for p in infra.rglob(database_volume.DATA_FOLDER) if p.parent.parent.parent.name == name]
    if len(restored) != 1:
        raise RecoveryError(f"{name}: its restored data folder is not under {infra} (found {len(restored)})")
    found = database_volume.read_back(restored[0])
    if not found.equal:
        raise RecoveryError(
            f"{name}: PostgreSQL started on {restored[0]} but read {found.rows} rows (digest "
            f"{found.digest}), not the {database_volume.ROWS} written (digest {database_volume.ROWS_DIGEST})"
        )
    return f"{name}: PostgreSQL started on the restored volume, {found.rows:,} rows read back"


def _demo_inventory(env: Path, folder: Path) -> Path:
    """New hardware for the demo: as many nodes as before, each with a quarter more cores and memory."""
    from omni_recovery.adapt.inventory import inventory_to_yaml, make_inventory
    from omni_recovery.envstate.folder import environment_from_folder

    nodes = environment_from_folder(env).nodes
    inventory = make_inventory(
        [
            (f"new-{n.name}", n.cpu_cores + n.cpu_cores // 4, n.memory_mib + n.memory_mib // 4, n.disk_gib)
            for n in nodes
        ],
        root=(folder / "infra").resolve().as_uri(),
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "inventory.yaml"
    path.write_text(inventory_to_yaml(inventory), encoding="utf-8")
    return path


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
