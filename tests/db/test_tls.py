"""The recovery database over TLS: `sslmode=verify-full` with a CA file works end to end, and a server
whose certificate the CA did not sign, or that is reached by a name its certificate does not carry, is
refused in one line naming the server (tests/db/tls_server.py: a real PostgreSQL, TLS only)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from omni_recovery.cli import main
from omni_recovery.db.connection import connect
from omni_recovery.db.server import ensure_database
from omni_recovery.errors import DatabaseError
from tests.db.tls_server import Authority, TlsPostgres, debian_postgres_bin


@pytest.fixture(scope="module")
def tls_postgres() -> Iterator[TlsPostgres]:
    found = debian_postgres_bin()
    if found is None:
        pytest.skip(
            "no PostgreSQL built with OpenSSL here (the embedded one is not): install Debian's "
            "`postgresql` package (.ci/run does when it may)"
        )
    # Not under pytest's basetemp, which is 0700 and so out of reach of the server's own user.
    with tempfile.TemporaryDirectory(prefix="omni-tls-postgres-") as folder:
        server = TlsPostgres(found, Path(folder), Authority.make(Path(folder), "omni-test-ca")).start()
        try:
            yield server
        finally:
            server.stop()


def test_verify_full_with_the_ca_file_connects_over_tls_and_the_commands_work(
    tls_postgres: TlsPostgres,
) -> None:
    with connect(tls_postgres.url()) as conn:
        row = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row is not None and row[0] is True and str(row[1]).startswith("TLS")
    ensure_database(tls_postgres.url(), "omni_over_tls")
    env = {"OMNI_RECOVERY_DATABASE_URL": tls_postgres.url("omni_over_tls")}
    result = CliRunner().invoke(main, ["init-database"], env=env)
    assert result.exit_code == 0, result.output
    with connect(tls_postgres.url("omni_over_tls")) as conn:
        migrate = conn.execute(
            "SELECT count(*) FROM omni.audit_log WHERE operation = 'database.migrate'"
        ).fetchone()
    assert migrate == (1,)


def test_a_server_certificate_another_ca_signed_is_refused_in_one_line(
    tls_postgres: TlsPostgres, tmp_path: Path
) -> None:
    other = Authority.make(tmp_path, "some-other-ca")
    with pytest.raises(DatabaseError) as refused:
        connect(tls_postgres.url(ca_file=other.cert_file))
    message = str(refused.value)
    assert "\n" not in message
    assert f"host localhost port {tls_postgres.port}" in message and "certificate verify failed" in message


def test_a_name_the_certificate_does_not_carry_is_refused(tls_postgres: TlsPostgres) -> None:
    """verify-full checks the name as well as the signature: 127.0.0.1 is not `localhost`."""
    with pytest.raises(DatabaseError, match=r"host 127\.0\.0\.1 .*does not match host name"):
        connect(tls_postgres.url(host="127.0.0.1"))


def test_the_server_refuses_a_connection_without_tls(tls_postgres: TlsPostgres) -> None:
    """So the tests above did go over TLS, not around it."""
    plain = tls_postgres.url().split("?")[0] + "?sslmode=disable"
    with pytest.raises(DatabaseError, match=r"pg_hba\.conf rejects connection"):
        connect(plain)
