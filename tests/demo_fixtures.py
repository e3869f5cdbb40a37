"""The demo environments and backup sets every test folder shares, built by one set of helpers.

The fixtures here are registered once, by tests/conftest.py (a conftest that re-imported them would
get a fixture of its own and build the same set again):

- `demo_env` (session): a tiny demo environment (6 applications, seed 7, one 700 KiB big file).
- `demo_set` (session): a real signed, encrypted backup set (id t1) of `demo_env`.
- `tiny_demo_root` (session): the default tiny demo environment (`TINY`), read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from omni_recovery.backup.writer import BackupSetSummary, WriterOptions, create_backup_set
from omni_recovery.backupset.signing import TrustedSigners, generate_signing_key, load_signing_key
from omni_recovery.envstate.demo import DemoOptions, write_demo_environment

PASSPHRASE = b"correct horse battery staple"
# Small ISOs and chunks so that a tiny environment still spans several volume-data ISOs and has chunked files.
SMALL_SET = WriterOptions(backup_set_id="t1", max_iso_size=1536 * 1024, chunk_size=256 * 1024)
# The default demo environment at the tiny volume scale.
TINY = DemoOptions(volume_scale="tiny")


@dataclass(frozen=True)
class DemoSet:
    env: Path
    output: Path
    summary: BackupSetSummary
    key_path: Path
    trusted: TrustedSigners


def write_demo(
    tmp_path_factory: pytest.TempPathFactory, folder: str, options: DemoOptions = TINY, name: str = "env"
) -> Path:
    """A demo environment written with `options` into a new pytest tmp folder: `<folder>N/<name>`."""
    root = tmp_path_factory.mktemp(folder) / name
    write_demo_environment(root, options)
    return root


def extra_set(
    demo_set: DemoSet, tmp_path_factory: pytest.TempPathFactory, folder: str, backup_set_id: str
) -> Path:
    """Another backup set (id `backup_set_id`) of the demo set's environment, signed by the same key."""
    output = tmp_path_factory.mktemp(folder) / "set"
    create_backup_set(
        demo_set.env,
        str(output),
        signing_key=load_signing_key(demo_set.key_path),
        passphrase=PASSPHRASE,
        options=replace(SMALL_SET, backup_set_id=backup_set_id),
    )
    return output


@pytest.fixture(scope="session")
def demo_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo(
        tmp_path_factory,
        "env",
        DemoOptions(volume_scale="tiny", applications=6, seed=7, big_file_bytes=700 * 1024),
    )


def signed_set(env: Path, work: Path, options: WriterOptions) -> DemoSet:
    """A backup set of `env` written into `work`/set with `options`, signed by a new key in `work`."""
    key_path = work / "signing.key"
    generate_signing_key(key_path)
    summary = create_backup_set(
        env, str(work / "set"), signing_key=load_signing_key(key_path), passphrase=PASSPHRASE, options=options
    )
    return DemoSet(env, work / "set", summary, key_path, TrustedSigners.from_specs([str(key_path) + ".pub"]))


@pytest.fixture(scope="session")
def demo_set(demo_env: Path, tmp_path_factory: pytest.TempPathFactory) -> DemoSet:
    return signed_set(demo_env, tmp_path_factory.mktemp("set"), SMALL_SET)


@pytest.fixture(scope="session")
def tiny_demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default tiny demo environment, shared read-only by the model, topology and planning tests."""
    return write_demo(tmp_path_factory, "tiny-demo", name="demo-env")
