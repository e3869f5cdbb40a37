"""Every operation on the recovery database leaves an audit row: migrations, catalog loads, validations."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from io_managers.pg_copy import replace_rows
from omni_recovery.db.connection import connect
from omni_recovery.db.schema import init_database
from omni_recovery.validate import store, validate
from tests.backupset.conftest import PASSPHRASE, DemoSet


def operations(url: str, subject: str | None = None) -> list[str]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT operation FROM omni.audit_log WHERE %s::text IS NULL OR subject = %s ORDER BY id",
            (subject, subject),
        ).fetchall()
    return [r[0] for r in rows]


def test_migrations_catalog_loads_and_validations_are_audited(fresh_database_url: str, demo_set: DemoSet):
    assert init_database(fresh_database_url)
    assert operations(fresh_database_url) == ["database.migrate"]
    assert init_database(fresh_database_url) == []
    assert operations(fresh_database_url) == ["database.migrate"], "nothing applied, nothing audited"

    table = pa.table(
        {
            "backup_set_id": ["audit-set"],
            "created_at": [datetime(2026, 11, 20, tzinfo=UTC)],
            "omnicloud_version": ["4.2.1"],
            "iso_count": [6],
        }
    )
    with connect(fresh_database_url) as conn:
        replace_rows(conn, "backup_sets", table)
    assert operations(fresh_database_url, "omni.backup_sets") == ["catalog.load"]

    report = validate(str(demo_set.output), demo_set.trusted, PASSPHRASE, deep=False)
    with connect(fresh_database_url) as conn:
        store(conn, report)
    assert operations(fresh_database_url, report.backup_set_id) == ["validation.store"]
