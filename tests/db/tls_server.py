"""A PostgreSQL server that speaks TLS only, for the tests of `sslmode=verify-full`.

The embedded server's wheel is built without OpenSSL, so this starts Debian's PostgreSQL (package
`postgresql`, which .ci/run installs when missing) in a folder of its own, on a free port of
127.0.0.1, with `ssl = on`, a server certificate for `localhost` signed by a CA made here, and a
pg_hba.conf that accepts TLS connections only. As root, the server runs as the `postgres` user.
"""

from __future__ import annotations

import datetime
import glob
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.targets.sftp_servers import free_port

SERVER_USER = "postgres"  # Debian's package makes it; PostgreSQL refuses to run as root


def debian_postgres_bin() -> Path | None:
    """The newest installed Debian PostgreSQL's bin folder, None when there is none."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


@dataclass(frozen=True)
class Authority:
    """A certificate authority made for a test: its key and its certificate (PEM in `cert_file`)."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    cert_file: Path

    @classmethod
    def make(cls, folder: Path, name: str) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            _builder(subject, subject, key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        path = folder / f"{name}.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(key, cert, path)

    def issue(self, folder: Path, dns_name: str) -> tuple[Path, Path]:
        """A server certificate for `dns_name` only (no IP address): its certificate and key files."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)])
        cert = (
            _builder(subject, self.cert.subject, key)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = folder / "server.crt", folder / "server.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_file, key_file


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


@dataclass
class TlsPostgres:
    """Debian's PostgreSQL on 127.0.0.1:`port`, TLS only, its certificate for `localhost` by `ca`."""

    bin: Path
    folder: Path
    ca: Authority
    port: int = 0

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "postgres", *, host: str = "localhost", ca_file: Path | None = None) -> str:
        ca = ca_file or self.ca.cert_file
        return (
            f"postgresql://{SERVER_USER}@{host}:{self.port}/{database}?sslmode=verify-full&sslrootcert={ca}"
        )

    def start(self) -> TlsPostgres:
        self.port = free_port()
        self.folder.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.folder, SERVER_USER)
        self._as_server(
            self.bin / "initdb", "-D", str(self.data), "-U", SERVER_USER, "--auth=trust", "-E", "UTF8"
        )
        cert, key = self.ca.issue(self.data, "localhost")
        key.chmod(0o600)
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.data}'\n"
                f"ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\n"
            )
        (self.data / "pg_hba.conf").write_text(
            "hostssl all all 127.0.0.1/32 trust\nhost all all 0.0.0.0/0 reject\n"
        )
        self._own()
        self._as_server(
            self.bin / "pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w", "start"
        )
        return self

    def stop(self) -> None:
        self._as_server(
            self.bin / "pg_ctl", "-D", str(self.data), "-w", "-m", "immediate", "stop", check=False
        )

    def _own(self) -> None:
        if os.geteuid() != 0:
            return
        account = pwd.getpwnam(SERVER_USER)
        for path in [self.data, *self.data.rglob("*")]:
            os.chown(path, account.pw_uid, account.pw_gid)

    def _as_server(self, *command: str | Path, check: bool = True) -> None:
        user = SERVER_USER if os.geteuid() == 0 else None
        subprocess.run([str(c) for c in command], check=check, capture_output=True, user=user, timeout=120)
