"""Connection errors name the host and what failed, and never show the password."""

from __future__ import annotations

from pathlib import Path

import pytest

from omni_recovery.db.connection import connect, describe_url, redact_url, with_database
from omni_recovery.db.schema import init_database
from omni_recovery.db.server import database_url
from omni_recovery.errors import DatabaseError
from omni_recovery.settings import DATABASE_URL_ENV, load_settings

SECRET = "s3cr3t-Pa55"


def test_refused_connection_names_host_and_reason(tmp_path: Path) -> None:
    bad = f"postgresql://omni:{SECRET}@127.0.0.1:9/omni_recovery"
    settings = load_settings(tmp_path, environ={DATABASE_URL_ENV: bad})
    url = database_url(settings)  # an external URL is returned as given; no server is started
    assert url == bad
    assert not settings.pgdata.exists()
    with pytest.raises(DatabaseError) as caught:
        connect(url)
    message = str(caught.value)
    assert "host 127.0.0.1 port 9" in message
    assert "database omni_recovery" in message
    assert "refused" in message.lower()
    assert SECRET not in message
    assert caught.value.__cause__ is None  # the psycopg error is not chained into tracebacks


def test_unknown_host_is_named() -> None:
    bad = f"postgresql://omni:{SECRET}@no-such-host.invalid:5432/omni_recovery"
    with pytest.raises(DatabaseError) as caught:
        connect(bad, connect_timeout=5)
    message = str(caught.value)
    assert "no-such-host.invalid" in message
    assert "translate host name" in message or "resolve" in message.lower()
    assert SECRET not in message


def test_init_database_on_a_bad_url_is_a_database_error() -> None:
    with pytest.raises(DatabaseError, match=r"127\.0\.0\.1"):
        init_database(f"postgresql://omni:{SECRET}@127.0.0.1:9/omni_recovery")


def test_malformed_url_does_not_echo_the_password() -> None:
    with pytest.raises(DatabaseError, match="malformed") as caught:
        connect(f"postgresql://omni:{SECRET}@[::1/omni_recovery")
    assert SECRET not in str(caught.value)


def test_missing_database_says_so(database_url: str) -> None:
    missing = with_database(database_url, "no_such_database_here")
    with pytest.raises(DatabaseError, match="does not exist"):
        connect(missing)


def test_describe_and_redact() -> None:
    url = f"postgresql://omni:{SECRET}@db.example:6543/recovery"
    assert describe_url(url) == "host db.example port 6543, database recovery, user omni"
    assert SECRET not in redact_url(url)
    assert "db.example" in redact_url(url)
    assert describe_url("postgresql://postgres@/x?host=/tmp/ws/postgres").startswith(
        "socket folder /tmp/ws/postgres port 5432"
    )
    assert describe_url("host=h dbname=d password=zz") == "host h port 5432, database d"


def test_connect_works_and_does_not_autocommit(database_url: str) -> None:
    with connect(database_url) as conn:
        assert conn.autocommit is False
        row = conn.execute("SELECT current_setting('application_name')").fetchone()
        assert row == ("omni-recovery",)
