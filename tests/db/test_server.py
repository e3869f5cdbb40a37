"""The embedded server: cold start, reuse across calls and processes, stop, concurrent starts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from omni_recovery.db.connection import connect
from omni_recovery.db.server import (
    DATABASE_NAME,
    database_url,
    embedded_status,
    start_embedded,
    stop_embedded,
)
from omni_recovery.errors import DatabaseError
from omni_recovery.settings import Settings

REPO = Path(__file__).resolve().parents[2]

_CHILD = """
import sys, time
from omni_recovery.errors import DatabaseError
from omni_recovery.settings import Settings
from omni_recovery.db.server import database_url, embedded_status
from pathlib import Path
settings = Settings(workspace=Path(sys.argv[1]))
start = time.perf_counter()
url = database_url(settings)
print(url, embedded_status(settings).pid, round(time.perf_counter() - start, 4))
"""


def _child(workspace: Path) -> subprocess.Popen[str]:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(workspace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _child_result(proc: subprocess.Popen[str]) -> tuple[str, int, float]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    url, pid, seconds = out.split()
    return url, int(pid), float(seconds)


def _stop(settings: Settings) -> None:
    if settings.pgdata.exists():
        stop_embedded(settings)


@pytest.fixture
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = Settings(workspace=tmp_path_factory.mktemp("ws"))
    try:
        yield settings
    finally:
        _stop(settings)


def _works(url: str) -> None:
    with connect(url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (DATABASE_NAME,)


def test_cold_start_then_warm_reuse(workspace: Settings) -> None:
    assert embedded_status(workspace) is None
    start = time.perf_counter()
    url = database_url(workspace)
    cold = time.perf_counter() - start
    _works(url)
    server = embedded_status(workspace)
    assert server is not None
    assert server.socket_dir == workspace.pgdata.resolve() or server.socket_dir.exists()

    start = time.perf_counter()
    again = database_url(workspace)
    warm = time.perf_counter() - start
    assert again == url
    assert embedded_status(workspace) == server  # same postmaster, not a new one (its speed: printed)
    print(f"\nembedded PostgreSQL: cold start {cold:.3f} s, warm reuse in-process {warm * 1000:.1f} ms")


def test_reuse_from_another_process(workspace: Settings) -> None:
    url = database_url(workspace)
    server = embedded_status(workspace)
    assert server is not None
    child_url, child_pid, seconds = _child_result(_child(workspace.workspace))
    assert child_url == url
    assert child_pid == server.pid
    print(f"\nembedded PostgreSQL: warm reuse from a new process {seconds * 1000:.1f} ms (after imports)")
    # The child's exit did not stop the server (cleanup_mode=None).
    assert embedded_status(workspace) == server


def test_stop_and_restart(workspace: Settings) -> None:
    url = database_url(workspace)
    assert stop_embedded(workspace) is True
    assert embedded_status(workspace) is None
    assert stop_embedded(workspace) is False
    start = time.perf_counter()
    assert database_url(workspace) == url  # same socket folder, so the same URL
    restart = time.perf_counter() - start
    _works(url)
    print(f"\nembedded PostgreSQL: restart of an existing data folder {restart:.3f} s")


def test_concurrent_cold_starts_share_one_server(workspace: Settings) -> None:
    children = [_child(workspace.workspace) for _ in range(3)]
    results = [_child_result(proc) for proc in children]
    assert len({url for url, _, _ in results}) == 1
    assert len({pid for _, pid, _ in results}) == 1
    server = embedded_status(workspace)
    assert server is not None and server.pid == results[0][1]
    _works(results[0][0])


def test_stale_pidfile_of_another_process_is_ignored(workspace: Settings) -> None:
    url = database_url(workspace)
    stop_embedded(workspace)
    # As after a reboot: postmaster.pid left behind, its PID now used by an unrelated process (us).
    pidfile = workspace.pgdata / "postmaster.pid"
    pidfile.write_text(f"{os.getpid()}\n{workspace.pgdata}\n0\n5432\n{workspace.pgdata}\n\n  1 2\nready \n")
    assert embedded_status(workspace) is None
    assert database_url(workspace) == url
    _works(url)
    server = start_embedded(workspace)
    assert server.pid != os.getpid()


def test_external_url_starts_nothing(tmp_path: Path) -> None:
    settings = Settings(workspace=tmp_path / "ws", database_url="postgresql://u@db.example/omni")
    assert database_url(settings) == "postgresql://u@db.example/omni"
    assert not settings.workspace.exists()


def test_data_folder_of_another_major_version_is_a_clear_error(workspace: Settings) -> None:
    database_url(workspace)
    stop_embedded(workspace)
    (workspace.pgdata / "PG_VERSION").write_text("12\n")
    with pytest.raises(DatabaseError) as caught:
        database_url(workspace)
    message = str(caught.value)
    assert "did not start" in message
    assert "incompatible" in message  # the server log's FATAL line is quoted


def test_foreign_files_in_the_data_folder_are_refused(tmp_path: Path) -> None:
    settings = Settings(workspace=tmp_path / "ws")
    settings.pgdata.mkdir(parents=True)
    (settings.pgdata / "notes.txt").write_text("not a database")
    with pytest.raises(DatabaseError, match="PG_VERSION is missing"):
        database_url(settings)
