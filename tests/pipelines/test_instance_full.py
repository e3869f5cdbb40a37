"""A Dagster instance that cannot write its storage (a file-size limit, a full disk) fails a command that
runs a job in one line naming the workspace's dagster/ folder and the cause, never with a traceback,
and leaves no ISO behind."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from omni_recovery.backupset.signing import generate_signing_key
from tests.backupset.conftest import PASSPHRASE

ROOT = Path(__file__).resolve().parents[2]
# In a mount namespace of its own: the workspace's dagster/ folder on a 4 MiB tmpfs, the instance made
# there, the rest of the tmpfs filled, then the command.
FULL_DISK = """
set -e
mount -t tmpfs -o size=4m tmpfs "$1/dagster"
"$2" -c 'import sys; from omni_recovery.settings import load_settings; from pipelines.runner import \
dagster_instance; dagster_instance(load_settings(sys.argv[1]))' "$1"
dd if=/dev/zero of="$1/dagster/filler" bs=4096 2>/dev/null || true
shift
exec "$@"
"""


def refuse_writes_past(limit: int) -> None:
    """In the child: the kernel refuses writes past `limit` bytes in any file (EFBIG)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def backup_create(demo_env: Path, tmp_path: Path, workspace: Path) -> list[str]:
    generate_signing_key(tmp_path / "k.key")
    command = ["backup", "create", "--source", str(demo_env), "--output", str(tmp_path / "set")]
    return [
        sys.executable,
        "-m",
        "omni_recovery.cli",
        *command,
        "--workspace",
        str(workspace),
        "--signing-key",
        str(tmp_path / "k.key"),
    ]


def assert_one_line_naming_the_folder(proc: subprocess.CompletedProcess[str], workspace: Path) -> None:
    said = proc.stdout + proc.stderr
    assert proc.returncode == 1, said
    assert "Traceback" not in said, said
    [line] = [line for line in proc.stderr.splitlines() if line.strip()]
    assert line.startswith(
        f"error: {workspace / 'dagster'}: the workspace's Dagster instance cannot write"
    ), line


def run(command: list[str], **extra: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload]
        command,
        env={**os.environ, "OMNI_RECOVERY_PASSPHRASE": PASSPHRASE.decode()},
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        **extra,
    )


def test_an_instance_past_the_file_size_limit_fails_in_one_line(demo_env: Path, tmp_path: Path) -> None:
    # 64 KiB: the instance's first SQLite database is larger, so creating it fails (disk I/O error).
    workspace = tmp_path / "ws"
    proc = run(backup_create(demo_env, tmp_path, workspace), preexec_fn=lambda: refuse_writes_past(1 << 16))
    assert_one_line_naming_the_folder(proc, workspace)
    assert "disk I/O error" in proc.stderr
    assert not (tmp_path / "set").exists() or not list((tmp_path / "set").iterdir())


def _namespaces_allow_a_tmpfs(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "mount",
        "-t",
        "tmpfs",
        "tmpfs",
        str(tmp_path),
    ]
    return subprocess.run(probe, capture_output=True, timeout=60).returncode == 0


def test_an_instance_on_a_full_disk_fails_in_one_line(demo_env: Path, tmp_path: Path) -> None:
    if not _namespaces_allow_a_tmpfs(tmp_path):
        pytest.skip("this machine lets no user namespace mount a tmpfs (unshare --user --mount)")
    workspace = tmp_path / "ws"
    (workspace / "dagster").mkdir(parents=True)
    command = backup_create(demo_env, tmp_path, workspace)
    namespace = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", FULL_DISK, "sh"]
    proc = run([*namespace, str(workspace), *command])
    assert_one_line_naming_the_folder(proc, workspace)
    assert not (tmp_path / "set").exists() or not list((tmp_path / "set").iterdir())
