"""Audit rows are written in the caller's transaction, with the OS user as default actor."""

from __future__ import annotations

import getpass
import uuid
from pathlib import Path

import psycopg
import pytest

from omni_recovery.db.audit import audit
from omni_recovery.db.connection import connect


def test_audit_row_is_written(database_url: str) -> None:
    subject = f"set-{uuid.uuid4().hex[:8]}"
    with connect(database_url) as conn:
        row_id = audit(conn, "register-isos", subject, {"isos": 6, "path": Path("/srv/isos")})
        conn.commit()
    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT id, actor, operation, subject, detail, at FROM omni.audit_log WHERE subject = %s",
            (subject,),
        ).fetchone()
    assert row is not None
    assert row[0] == row_id
    assert row[1] == getpass.getuser()
    assert row[2:5] == ("register-isos", subject, {"isos": 6, "path": "/srv/isos"})
    assert row[5] is not None


def test_explicit_actor_and_no_detail(database_url: str) -> None:
    subject = f"plan-{uuid.uuid4().hex[:8]}"
    with connect(database_url) as conn:
        audit(conn, "plan-generate", subject, None, actor="operator@site")
        conn.commit()
        row = conn.execute(
            "SELECT actor, detail FROM omni.audit_log WHERE subject = %s", (subject,)
        ).fetchone()
    assert row == ("operator@site", {})


def test_audit_rolls_back_with_the_operation(database_url: str) -> None:
    subject = f"rolled-back-{uuid.uuid4().hex[:8]}"
    with connect(database_url) as conn:
        audit(conn, "execute-plan", subject, {"step": 1})
        conn.rollback()
        count = conn.execute("SELECT count(*) FROM omni.audit_log WHERE subject = %s", (subject,)).fetchone()
    assert count == (0,)


def test_audit_log_is_append_only(database_url: str) -> None:
    subject = f"immutable-{uuid.uuid4().hex[:8]}"
    with connect(database_url) as conn:
        audit(conn, "validate-isos", subject, {})
        conn.commit()
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("UPDATE omni.audit_log SET actor = 'someone else' WHERE subject = %s", (subject,))
        conn.rollback()
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("DELETE FROM omni.audit_log WHERE subject = %s", (subject,))
        conn.rollback()
