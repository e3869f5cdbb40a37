"""The writer leaves no set that looks whole but is not: a file that changes while it is backed up, or
an output that takes no more bytes, fails the backup with an error naming it, and no ISO stays."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from omni_recovery.backup.writer import create_backup_set
from omni_recovery.backupset.signing import generate_signing_key, load_signing_key
from omni_recovery.errors import EnvironmentStateError
from tests.demo_fixtures import PASSPHRASE, SMALL_SET


def copied_env(demo_env: Path, tmp_path: Path) -> Path:
    """A copy of the demo environment to change, and a signing key beside it."""
    env = tmp_path / "env"
    subprocess.run(["cp", "-a", str(demo_env), str(env)], check=True)
    generate_signing_key(tmp_path / "k.key")
    return env


def back_up(env: Path, progress: Callable[[str, int], None]) -> Path:
    """Back `env` up into a `set` folder beside it, with `progress` hearing each phase."""
    output = env.parent / "set"
    create_backup_set(
        env,
        str(output),
        signing_key=load_signing_key(env.parent / "k.key"),
        passphrase=PASSPHRASE,
        options=SMALL_SET,
        progress=progress,
    )
    return output


def volume_file(env: Path) -> Path:
    return sorted(p for p in (env / "volumes").rglob("*") if p.is_file() and p.stat().st_size > 1000)[0]


@pytest.mark.parametrize("change", ["same size", "shorter"])
def test_a_file_changed_between_hashing_and_writing_fails_the_backup_naming_it(
    demo_env: Path, tmp_path: Path, change: str
) -> None:
    env = copied_env(demo_env, tmp_path)
    victim = volume_file(env)

    def progress(phase: str, amount: int) -> None:
        if phase == "write" and victim.read_bytes() == original:  # a live writer, once the ISOs are begun
            data = bytearray(original)
            data[10] ^= 0xFF
            victim.write_bytes(bytes(data) if change == "same size" else bytes(data[: len(data) // 2]))

    original = victim.read_bytes()
    with pytest.raises(EnvironmentStateError, match="changed while being backed up") as info:
        back_up(env, progress)
    assert str(victim) in str(info.value) and ".iso was whole" in str(info.value)
    assert not list((tmp_path / "set").iterdir()), "no ISO of the set is left"


def test_a_file_cut_short_while_being_hashed_is_named(demo_env: Path, tmp_path: Path) -> None:
    env = copied_env(demo_env, tmp_path)
    big = max((p for p in (env / "volumes").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    size = big.stat().st_size

    def progress(phase: str, amount: int) -> None:
        if phase == "hash" and big.stat().st_size == size:  # once hashing has begun; its parts come last
            os.truncate(big, size // 2)

    match = rf"{big}: cannot read it while backing it up: file ended \d+ bytes early"
    with pytest.raises(EnvironmentStateError, match=match):
        back_up(env, progress)
    assert not (tmp_path / "set").exists() or not list((tmp_path / "set").iterdir())


def refuse_writes_past(limit: int) -> None:
    """In the child: the kernel refuses writes past `limit` bytes in any file (EFBIG), as a full disk."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_an_output_that_takes_no_more_bytes_fails_naming_the_iso(demo_env: Path, tmp_path: Path) -> None:
    generate_signing_key(tmp_path / "k.key")
    output = tmp_path / "set"
    command = ["backup", "create", "--source", str(demo_env), "--output", str(output)]
    # a workspace of its own: the clone's default one may hold a Dagster instance past the size limit
    command += ["--workspace", str(tmp_path / "ws")]
    proc = subprocess.run(
        [sys.executable, "-m", "omni_recovery.cli", *command, "--signing-key", str(tmp_path / "k.key")],
        env={**os.environ, "OMNI_RECOVERY_PASSPHRASE": PASSPHRASE.decode()},
        preexec_fn=lambda: refuse_writes_past(1 << 20),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    said = proc.stdout + proc.stderr
    assert "Traceback" not in said, said
    assert f"into {output} failed: [Errno 27] File too large; no ISO of this set is left there" in said, said
    assert ".iso into" in said
    assert not list(output.iterdir())
