"""Audit rows are written in the caller's transaction, with the OS user as default actor, and name who
did it: OS user, uid, host, database role and the SSH keys used; the log is append-only."""

from __future__ import annotations

import getpass
import os
import pwd
import socket
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from omni_recovery.db.audit import audit
from omni_recovery.db.connection import connect
from omni_recovery.operator_identity import note_ssh_key


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


def _identity_of(conn: psycopg.Connection[Any], subject: str) -> tuple[Any, ...] | None:
    return conn.execute(
        "SELECT os_user, os_uid, host, db_role, ssh_keys FROM omni.audit_log WHERE subject = %s", (subject,)
    ).fetchone()


def test_each_row_names_the_os_user_uid_host_database_role_and_ssh_keys(database_url: str) -> None:
    subject = f"who-{uuid.uuid4().hex[:8]}"
    note_ssh_key("deploy@backup-host:2222", "SHA256:test-fingerprint")
    with connect(database_url) as conn:
        audit(conn, "execute-plan", subject)
        conn.commit()
        role = conn.execute("SELECT current_user").fetchone()
        row = _identity_of(conn, subject)
    assert row is not None and role is not None
    os_user, uid, host, db_role, ssh_keys = row
    assert (os_user, uid, host) == (pwd.getpwuid(os.getuid()).pw_name, os.getuid(), socket.gethostname())
    assert db_role == role[0]
    assert ssh_keys["deploy@backup-host:2222"] == "SHA256:test-fingerprint"


def test_an_application_role_with_every_privilege_is_recorded_and_still_cannot_change_the_log(
    database_url: str,
) -> None:
    """The database role is the server's (not what the client says), and the log stays append-only
    for a role given UPDATE, DELETE and TRUNCATE on it."""
    role = f"omni_app_{uuid.uuid4().hex[:8]}"
    with connect(database_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"GRANT USAGE ON SCHEMA omni TO {role}")
        admin.execute(f"GRANT ALL ON omni.audit_log TO {role}")
        admin.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA omni TO {role}")
    subject = f"app-{uuid.uuid4().hex[:8]}"
    url = make_conninfo(database_url, user=role)
    with connect(url) as conn:
        audit(conn, "register-isos", subject)
        conn.commit()
        row = _identity_of(conn, subject)
        assert row is not None and row[3] == role
        for change in (
            "UPDATE omni.audit_log SET actor = 'someone else' WHERE subject = %s",
            "DELETE FROM omni.audit_log WHERE subject = %s",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(change, (subject,))
            conn.rollback()
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("TRUNCATE omni.audit_log")
        conn.rollback()
        assert _identity_of(conn, subject) == row
