"""Fixtures shared by the backup-set tests: a tiny demo environment and a backup set of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from omni_recovery.backupset.signing import TrustedSigners, generate_signing_key, load_signing_key
from omni_recovery.backupset.writer import BackupSetSummary, WriterOptions, create_backup_set
from omni_recovery.envstate.demo import DemoOptions, write_demo_environment

PASSPHRASE = b"correct horse battery staple"
# Small ISOs and chunks so that a tiny environment still spans several volume-data ISOs and has chunked files.
SMALL_SET = WriterOptions(backup_set_id="t1", max_iso_size=1536 * 1024, chunk_size=256 * 1024)


@dataclass(frozen=True)
class DemoSet:
    env: Path
    output: Path
    summary: BackupSetSummary
    key_path: Path
    trusted: TrustedSigners


@pytest.fixture(scope="session")
def demo_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("env") / "env"
    write_demo_environment(
        root, DemoOptions(volume_scale="tiny", applications=6, seed=7, big_file_bytes=700 * 1024)
    )
    return root


@pytest.fixture(scope="session")
def demo_set(demo_env: Path, tmp_path_factory: pytest.TempPathFactory) -> DemoSet:
    work = tmp_path_factory.mktemp("set")
    key_path = work / "signing.key"
    generate_signing_key(key_path)
    summary = create_backup_set(
        demo_env,
        str(work / "set"),
        signing_key=load_signing_key(key_path),
        passphrase=PASSPHRASE,
        options=SMALL_SET,
    )
    return DemoSet(
        demo_env, work / "set", summary, key_path, TrustedSigners.from_specs([str(key_path) + ".pub"])
    )
