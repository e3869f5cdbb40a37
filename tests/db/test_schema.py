"""init_database: every table, idempotent, safe when run concurrently; the schema holds sets side by side."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from omni_recovery.db.connection import connect
from omni_recovery.db.schema import SCHEMA, TABLES, init_database, migrations, pending_migrations
from omni_recovery.errors import DatabaseError

ALL = [m.name for m in migrations()]


def _tables(url: str) -> set[str]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (SCHEMA,)
        ).fetchall()
    return {row[0] for row in rows}


def _recorded(url: str) -> list[tuple[int, str]]:
    with connect(url) as conn:
        rows = conn.execute(
            f"SELECT version, name FROM {SCHEMA}.schema_migrations ORDER BY version"
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


def test_migrations_are_numbered_without_gaps() -> None:
    assert [m.version for m in migrations()] == list(range(1, len(migrations()) + 1))
    assert all(m.sql.strip() for m in migrations())


def test_init_creates_every_table(fresh_database_url: str) -> None:
    assert pending_migrations(fresh_database_url) == ALL
    applied = init_database(fresh_database_url)
    assert applied == ALL
    assert _tables(fresh_database_url) == set(TABLES)
    assert _recorded(fresh_database_url) == [(m.version, m.name) for m in migrations()]


def test_second_run_applies_nothing(fresh_database_url: str) -> None:
    init_database(fresh_database_url)
    assert init_database(fresh_database_url) == []
    assert pending_migrations(fresh_database_url) == []
    assert len(_recorded(fresh_database_url)) == len(ALL)


def test_concurrent_init_applies_each_migration_once(fresh_database_url: str) -> None:
    workers = 4
    barrier = threading.Barrier(workers)

    def run() -> list[str]:
        barrier.wait()
        return init_database(fresh_database_url)

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda _: run(), range(workers)))
    applied = sorted(name for result in results for name in result)
    assert applied == sorted(ALL)  # every migration applied exactly once, by one of the callers
    assert _recorded(fresh_database_url) == [(m.version, m.name) for m in migrations()]
    assert _tables(fresh_database_url) == set(TABLES)


def test_newer_database_is_refused(fresh_database_url: str) -> None:
    init_database(fresh_database_url)
    with connect(fresh_database_url) as conn:
        conn.execute(
            f"INSERT INTO {SCHEMA}.schema_migrations (version, name, checksum) "
            "VALUES (9999, '9999_future', 'x')"
        )
        conn.commit()
    with pytest.raises(DatabaseError, match="newer than this omni-recovery"):
        init_database(fresh_database_url)


def test_modified_migration_is_refused(fresh_database_url: str) -> None:
    init_database(fresh_database_url)
    with connect(fresh_database_url) as conn:
        conn.execute(f"UPDATE {SCHEMA}.schema_migrations SET checksum = 'edited' WHERE version = 1")
        conn.commit()
    with pytest.raises(DatabaseError, match="different SQL"):
        init_database(fresh_database_url)


def _add_set(conn: psycopg.Connection, set_id: str) -> None:
    conn.execute(
        "INSERT INTO omni.backup_sets (backup_set_id, created_at, omnicloud_version, source_environment, "
        "signer_key_id, iso_count) VALUES (%s, '2026-11-20T02:00:00Z', '4.2.1', '{\"name\": \"prod\"}', "
        "%s, 6)",
        (set_id, "ab" * 32),
    )


def _copy_files(conn: psycopg.Connection, set_id: str, count: int) -> None:
    buf = io.StringIO()
    for i in range(count):
        buf.write(
            f"{set_id}\t{set_id}_volume-data_001.iso\tdata/volumes/app/v/files/f{i}\tfile\t{i}\t"
            f"{'0' * 64}\t33188\tvolume:app/v\tf\n"
        )
    with conn.cursor().copy(
        "COPY omni.files (backup_set_id, iso_name, path, type, size, sha256, mode, component_id, encrypted) "
        "FROM STDIN"
    ) as copy:
        copy.write(buf.getvalue())


def test_catalog_reload_by_delete_and_copy_keeps_sets_apart(database_url: str) -> None:
    with connect(database_url) as conn:
        for set_id in ("reload-a", "reload-b"):
            _add_set(conn, set_id)
            _copy_files(conn, set_id, 3)
        conn.commit()
        # Reload set a alone, including its backup_sets row, in one transaction.
        conn.execute("DELETE FROM omni.files WHERE backup_set_id = 'reload-a'")
        conn.execute("DELETE FROM omni.backup_sets WHERE backup_set_id = 'reload-a'")
        _add_set(conn, "reload-a")
        _copy_files(conn, "reload-a", 5)
        conn.commit()
        rows = conn.execute(
            "SELECT backup_set_id, count(*) FROM omni.files WHERE backup_set_id LIKE 'reload-%' GROUP BY 1"
        ).fetchall()
    counts: dict[str, int] = {row[0]: row[1] for row in rows}
    assert counts == {"reload-a": 5, "reload-b": 3}


def test_catalog_rows_may_be_loaded_before_their_set_row_in_one_transaction(database_url: str) -> None:
    with connect(database_url) as conn:
        _copy_files(conn, "early-files", 2)  # the deferred key is checked at commit
        _add_set(conn, "early-files")
        conn.commit()


def test_deleting_a_set_that_still_has_catalog_rows_fails(database_url: str) -> None:
    with connect(database_url) as conn:
        _add_set(conn, "orphan-check")
        _copy_files(conn, "orphan-check", 1)
        conn.commit()
        conn.execute("DELETE FROM omni.backup_sets WHERE backup_set_id = 'orphan-check'")
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.commit()


def test_tracking_tables_take_a_run(database_url: str) -> None:
    with connect(database_url) as conn:
        _add_set(conn, "tracked")
        conn.execute(
            "INSERT INTO omni.recovery_plans (plan_id, backup_set_id, adaptation_mode, plan_yaml, "
            "plan_sha256) VALUES ('plan-1', 'tracked', 'basic', 'steps: []', %s)",
            ("cd" * 32,),
        )
        conn.execute(
            "INSERT INTO omni.adaptations (plan_id, kind, subject, old_value, new_value, reason) "
            "VALUES ('plan-1', 'network', 'subnet management', "
            "'\"10.0.0.0/24\"', '\"10.20.0.0/24\"', 'new site')"
        )
        conn.execute(
            "INSERT INTO omni.recovery_runs (run_id, plan_id, status) VALUES ('run-1', 'plan-1', 'running')"
        )
        conn.execute(
            "INSERT INTO omni.recovery_steps (run_id, step_id, phase, status) "
            "VALUES ('run-1', 'directors', 'directors', 'succeeded')"
        )
        conn.execute(
            "INSERT INTO omni.restored_files (run_id, target, path, sha256, size) "
            "VALUES ('run-1', 'node-a', 'etc/director.yaml', %s, 10)",
            ("ef" * 32,),
        )
        conn.commit()
        conn.execute("DELETE FROM omni.recovery_runs WHERE run_id = 'run-1'")
        left = conn.execute("SELECT count(*) FROM omni.restored_files WHERE run_id = 'run-1'").fetchone()
        conn.rollback()
    assert left == (0,)
