"""An environment's certificate authority: the self-signed CA certificate kept as keys/ca.crt, and
private keys as PEM.

The demo generator (envstate.demo: a deterministic Ed25519 CA) and a restore (restorer.certificates:
a fresh EC P-256 CA, never the backup's) both build their CA here, so the two agree on what a CA
certificate holds: basic constraints CA, key usage cert-sign and CRL-sign (critical), and its
subject key identifier.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["CaKey", "ca_certificate", "private_pem"]

CaKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def ca_certificate(
    key: CaKey,
    subject: x509.Name,
    *,
    serial: int,
    not_before: datetime,
    validity: timedelta,
    path_length: int,
    digital_signature: bool = False,
) -> x509.Certificate:
    """A CA certificate for `key`, issued by itself (Ed25519 signs without a separate hash; an EC
    key signs with SHA-256)."""
    usage = x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_before + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(key, None if isinstance(key, Ed25519PrivateKey) else hashes.SHA256())


def private_pem(key: CaKey) -> bytes:
    """`key` as unencrypted PKCS#8 PEM (to be written with mode 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
