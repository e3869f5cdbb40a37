"""The recovery database's schema: numbered SQL migrations and the runner that applies them.

How it works: the schema lives in the PostgreSQL schema `omni`. Migrations are the files
`omni_recovery/db/migrations/NNNN_name.sql` (package data), numbered from 0001 without gaps and
never edited once released: a change is a new file. `init_database(url)`:

1. in one transaction under a transaction-level advisory lock, creates the schema `omni` and the
   table `omni.schema_migrations(version, name, checksum, applied_at)` if missing;
2. refuses a database whose schema is newer than this build knows, or whose applied migrations
   differ from the files here (checksum of the SQL text), rather than guess;
3. applies each missing migration in its own transaction: take the advisory lock, re-check that
   the version is still missing (another process may have applied it while this one waited),
   run the SQL, record the row. A failing migration rolls back entirely and leaves the earlier
   ones in place.

So re-running is a no-op and concurrent `init-database` calls are safe: they serialise on the
lock and each migration is applied exactly once. `init_database` returns the names it applied.

What can go wrong: the user in the URL lacks CREATE on the database (say so and stop); another
session holds the lock longer than `LOCK_TIMEOUT` (a hung migration elsewhere); a database
migrated by a newer or a modified omni-recovery; a missing migrations folder when the package was
installed without its package data (`[tool.setuptools.package-data]` must list
`migrations/*.sql`). Every one of these is a `DatabaseError`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import TupleRow

from omni_recovery.db.audit import audit
from omni_recovery.db.connection import SCHEMA, connect, describe_url
from omni_recovery.errors import DatabaseError

MIGRATIONS_PACKAGE = "omni_recovery.db"
MIGRATIONS_FOLDER = "migrations"
LOCK_TIMEOUT = "120s"
# pg_advisory_xact_lock key shared by every omni-recovery build: the first 8 bytes of a fixed hash.
ADVISORY_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"omni-recovery schema migrations").digest()[:8], "big", signed=True
)

TABLES = (
    "schema_migrations",
    "backup_sets",
    "isos",
    "components",
    "files",
    "hardware",
    "configurations",
    "component_state",
    "dependencies",
    "validation_runs",
    "validation_problems",
    "recovery_plans",
    "adaptations",
    "recovery_runs",
    "recovery_steps",
    "step_attempts",
    "restored_files",
    "audit_log",
    "set_registrations",
    "drills",
    "verification_slices",
)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_BOOTSTRAP = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@cache
def migrations() -> tuple[Migration, ...]:
    """Every migration shipped with this build, in order; refuses gaps, duplicates and odd names."""
    folder = resources.files(MIGRATIONS_PACKAGE).joinpath(MIGRATIONS_FOLDER)
    try:
        entries = [entry for entry in folder.iterdir() if entry.name.endswith(".sql")]
    except (FileNotFoundError, NotADirectoryError):
        entries = []
    if not entries:
        raise DatabaseError(
            f"no schema migrations found in {MIGRATIONS_PACKAGE}/{MIGRATIONS_FOLDER}: the package was "
            "installed without its .sql package data"
        )
    found: list[Migration] = []
    for entry in entries:
        match = _NAME.match(entry.name)
        if match is None:
            raise DatabaseError(f"schema migration {entry.name} is not named NNNN_lower_case_name.sql")
        sql_text = entry.read_text("utf-8")
        found.append(Migration(int(match.group(1)), entry.name.removesuffix(".sql"), sql_text))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise DatabaseError(
                f"schema migrations are not numbered 1..{len(found)} without gaps or duplicates: "
                f"expected {expected:04d}, found {migration.name}"
            )
    return tuple(found)


def init_database(url: str) -> list[str]:
    """Create or bring up to date the recovery schema at `url`; return the migrations applied now."""
    known = migrations()
    applied_now: list[str] = []
    with connect(url, autocommit=True) as conn:
        try:
            with conn.transaction():
                _lock(conn)
                conn.execute(_BOOTSTRAP)
            _check_history(conn, known, url)
            for migration in known:
                with conn.transaction():
                    _lock(conn)
                    row = conn.execute(
                        f"SELECT checksum FROM {SCHEMA}.schema_migrations WHERE version = %s",
                        (migration.version,),
                    ).fetchone()
                    if row is not None:
                        continue  # applied by a concurrent init_database while we waited
                    try:
                        conn.execute(migration.sql)
                    except psycopg.Error as exc:
                        raise DatabaseError(
                            f"schema migration {migration.name} failed at {describe_url(url)} and was "
                            f"rolled back: {_pg_message(exc)}"
                        ) from exc
                    conn.execute(
                        f"INSERT INTO {SCHEMA}.schema_migrations (version, name, checksum) "
                        "VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                applied_now.append(migration.name)
            if applied_now:
                _audit_migrations(conn, applied_now)
        except DatabaseError:
            raise
        except pg_errors.LockNotAvailable as exc:
            raise DatabaseError(
                f"another session held the schema migration lock at {describe_url(url)} for more than "
                f"{LOCK_TIMEOUT}; is an init-database stuck?"
            ) from exc
        except pg_errors.InsufficientPrivilege as exc:
            raise DatabaseError(
                f"not allowed to create the recovery schema at {describe_url(url)}: {_pg_message(exc)}"
            ) from exc
        except psycopg.Error as exc:
            raise DatabaseError(
                f"cannot migrate the recovery database at {describe_url(url)}: {_pg_message(exc)}"
            ) from exc
    return applied_now


def applied_migrations(url: str) -> list[str]:
    """Names of the migrations recorded in the database at `url` (empty when it was never initialised)."""
    with connect(url, autocommit=True) as conn:
        try:
            exists = conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.schema_migrations",)).fetchone()
            if exists is None or exists[0] is None:
                return []
            rows = conn.execute(f"SELECT name FROM {SCHEMA}.schema_migrations ORDER BY version").fetchall()
        except psycopg.Error as exc:
            raise DatabaseError(
                f"cannot read the schema version at {describe_url(url)}: {_pg_message(exc)}"
            ) from exc
    return [row[0] for row in rows]


def pending_migrations(url: str) -> list[str]:
    """Names of the migrations this build would apply to the database at `url`."""
    done = set(applied_migrations(url))
    return [m.name for m in migrations() if m.name not in done]


def _lock(conn: psycopg.Connection[TupleRow]) -> None:
    conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))


def _check_history(conn: psycopg.Connection[TupleRow], known: tuple[Migration, ...], url: str) -> None:
    """Refuse a database migrated by a newer or a different build of omni-recovery."""
    rows = conn.execute(
        f"SELECT version, name, checksum FROM {SCHEMA}.schema_migrations ORDER BY version"
    ).fetchall()
    by_version = {m.version: m for m in known}
    for version, name, checksum in rows:
        migration = by_version.get(version)
        if migration is None:
            raise DatabaseError(
                f"the recovery database at {describe_url(url)} has schema migration {name}, newer than this "
                f"omni-recovery knows (latest {known[-1].name}); upgrade omni-recovery"
            )
        if checksum != migration.checksum:
            raise DatabaseError(
                f"schema migration {name} at {describe_url(url)} was applied from different SQL than this "
                "omni-recovery ships; the database was created by another build. Use a fresh database."
            )


def _pg_message(exc: psycopg.Error) -> str:
    diag = exc.diag
    parts = [diag.message_primary or str(exc).strip()]
    if diag.message_detail:
        parts.append(diag.message_detail)
    if diag.sqlstate:
        parts.append(f"(SQLSTATE {diag.sqlstate})")
    return " ".join(parts)


def _audit_migrations(conn: psycopg.Connection[TupleRow], applied: list[str]) -> None:
    with conn.transaction():
        audit(conn, "database.migrate", SCHEMA, {"applied": applied})
