"""Fresh certificates for a restored environment: a new CA and one certificate per node.

How it works
------------
A restored environment never reuses the old CA's private key (it travelled in a backup and
must be treated as exposed): `issue_certificates()` generates a new EC P-256 CA key and a
self-signed CA certificate (basic constraints CA, key usage cert-sign and CRL-sign), then one
key and certificate per node or Director, signed by the new CA, with the node's hostnames and
IP addresses as subject alternative names and server- and client-auth extended key usage.
The old CA certificate, when given, is only read for its SHA-256 fingerprint and public key:
the fingerprint goes into the report data, and the new CA key is checked to differ from it.
Everything is returned as PEM bytes; private keys are unencrypted PKCS#8 and must be written
with mode 0600 (the caller writes them to each target root).

What can go wrong
-----------------
An old CA certificate that is not PEM raises CertificateError; so do a node without a name,
two nodes of one name, or an IP address that does not parse. `pki_problems()` checks what a node
root holds after a restore: the CA key matches the CA certificate, which signed the node's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from omni_recovery.envstate import pki
from omni_recovery.errors import RecoveryError

__all__ = [
    "CertificateBundle",
    "CertificateError",
    "IssuedCertificate",
    "NodeIdentity",
    "issue_certificates",
    "pki_problems",
]

CA_VALIDITY = timedelta(days=3650)
NODE_VALIDITY = timedelta(days=825)


class CertificateError(RecoveryError):
    """Certificates cannot be issued as asked."""


@dataclass(frozen=True)
class NodeIdentity:
    """Who a certificate is for: a node or Director name, its DNS names and IP addresses."""

    name: str
    hostnames: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class IssuedCertificate:
    name: str
    cert_pem: bytes
    key_pem: bytes
    fingerprint_sha256: str


@dataclass(frozen=True)
class CertificateBundle:
    """The new CA, one certificate per node, and the old CA's fingerprint for the report."""

    ca_cert_pem: bytes
    ca_key_pem: bytes
    ca_fingerprint_sha256: str
    old_ca_fingerprint_sha256: str | None
    nodes: dict[str, IssuedCertificate] = field(default_factory=dict)

    def report_data(self) -> dict[str, Any]:
        """What the recovery report records: fingerprints only, never key material."""
        return {
            "new_ca_fingerprint_sha256": self.ca_fingerprint_sha256,
            "old_ca_fingerprint_sha256": self.old_ca_fingerprint_sha256,
            "nodes": {name: cert.fingerprint_sha256 for name, cert in sorted(self.nodes.items())},
        }


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _public_der(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def issue_certificates(
    environment: str,
    nodes: Sequence[NodeIdentity],
    *,
    old_ca_pem: bytes | None = None,
    now: datetime | None = None,
) -> CertificateBundle:
    """A new CA for `environment` and one certificate per entry of `nodes` (see the module doc)."""
    names = [node.name for node in nodes]
    if any(not name for name in names):
        raise CertificateError("every node needs a name")
    if len(set(names)) != len(names):
        raise CertificateError(f"node names must be unique, found {sorted(names)}")
    old_fingerprint = None
    old_public = b""
    if old_ca_pem is not None:
        try:
            old = x509.load_pem_x509_certificate(old_ca_pem)
        except ValueError as exc:
            raise CertificateError(f"the old CA certificate is not PEM: {exc}") from exc
        old_fingerprint = _fingerprint(old)
        old_public = _public_der(old.public_key())
    start = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0) - timedelta(minutes=5)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    if _public_der(ca_key.public_key()) == old_public:  # pragma: no cover - a 2^-128 event
        raise CertificateError("the new CA key equals the old one")
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OmniCloud"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{environment} recovered CA"),
        ]
    )
    ca_cert = pki.ca_certificate(
        ca_key,
        ca_name,
        serial=x509.random_serial_number(),
        not_before=start,
        validity=CA_VALIDITY,
        path_length=0,
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    issued = {}
    for node in nodes:
        issued[node.name] = _issue(node, ca_key, ca_cert, ca_ski, start)
    return CertificateBundle(
        ca_cert_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        ca_key_pem=pki.private_pem(ca_key),
        ca_fingerprint_sha256=_fingerprint(ca_cert),
        old_ca_fingerprint_sha256=old_fingerprint,
        nodes=issued,
    )


def _issue(
    node: NodeIdentity,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_ski: x509.SubjectKeyIdentifier,
    start: datetime,
) -> IssuedCertificate:
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = [
        x509.DNSName(name) for name in dict.fromkeys(node.hostnames or (node.name,))
    ]
    for ip in node.ips:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError as exc:
            raise CertificateError(f"{node.name}: {ip!r} is not an IP address") from exc
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node.name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + NODE_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return IssuedCertificate(
        node.name, cert.public_bytes(serialization.Encoding.PEM), pki.private_pem(key), _fingerprint(cert)
    )


def pki_problems(ca_cert_pem: bytes, ca_key_pem: bytes, node_cert_pem: bytes) -> list[str]:
    """What is wrong with a node's certificates: an unreadable file, a CA key that is not the CA
    certificate's, or a node certificate the CA did not sign."""
    try:
        ca = x509.load_pem_x509_certificate(ca_cert_pem)
        ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
        node = x509.load_pem_x509_certificate(node_cert_pem)
    except (ValueError, TypeError) as exc:
        return [f"a certificate or key cannot be read: {exc}"]
    problems = []
    if _public_der(ca_key.public_key()) != _public_der(ca.public_key()):  # type: ignore[arg-type]
        problems.append("keys/ca.key is not the key of keys/ca.crt")
    try:
        node.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        problems.append("the node certificate is not signed by keys/ca.crt")
    return problems


def old_ca_problem(old_ca_pem: bytes | None) -> str | None:
    """Why the backed-up CA certificate cannot be used (not PEM, not a certificate), or None. A new CA
    is issued either way; an unreadable old one is a warning, not a failure."""
    if old_ca_pem is None:
        return None
    try:
        x509.load_pem_x509_certificate(old_ca_pem)
    except ValueError as exc:
        return f"the old CA certificate is not PEM: {exc}"
    return None
