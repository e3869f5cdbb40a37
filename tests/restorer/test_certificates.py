"""New CA and node certificates: chain verifies, SANs present, the old CA key is never reused."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from omni_recovery.restorer.certificates import (
    CertificateError,
    NodeIdentity,
    issue_certificates,
    pki_problems,
)
from tests.backupset.conftest import DemoSet


def test_new_ca_signs_one_certificate_per_node(demo_set: DemoSet):
    old_pem = (demo_set.env / "keys/ca.crt").read_bytes()
    old = x509.load_pem_x509_certificate(old_pem)
    nodes = [
        NodeIdentity("dir-1", ("dir-1.demo.omnicloud.internal", "new-node-01"), ("10.20.0.11",)),
        NodeIdentity("dir-2", (), ("10.20.0.12", "fd00::12")),
    ]
    bundle = issue_certificates("demo", nodes, old_ca_pem=old_pem)
    ca = x509.load_pem_x509_certificate(bundle.ca_cert_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.public_key() != old.public_key()
    assert bundle.ca_fingerprint_sha256 != bundle.old_ca_fingerprint_sha256
    assert bundle.old_ca_fingerprint_sha256 == old.fingerprint(hashes.SHA256()).hex()
    ca_key = serialization.load_pem_private_key(bundle.ca_key_pem, None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    assert ca_key.public_key().public_numbers() == ca.public_key().public_numbers()  # type: ignore[union-attr]
    assert set(bundle.nodes) == {"dir-1", "dir-2"}
    for node in nodes:
        issued = bundle.nodes[node.name]
        cert = x509.load_pem_x509_certificate(issued.cert_pem)
        cert.verify_directly_issued_by(ca)
        with pytest.raises((ValueError, TypeError, InvalidSignature)):
            cert.verify_directly_issued_by(old)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == list(node.hostnames or (node.name,))
        assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(ip) for ip in node.ips]
        key = serialization.load_pem_private_key(issued.key_pem, None)
        assert key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) == cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    report = bundle.report_data()
    assert "BEGIN" not in repr(report) and set(report["nodes"]) == {"dir-1", "dir-2"}
    again = issue_certificates("demo", nodes, old_ca_pem=old_pem)
    assert again.ca_key_pem != bundle.ca_key_pem, "every recovery gets a fresh CA key"


def test_bad_input_is_refused(tmp_path: Path):
    with pytest.raises(CertificateError, match="not PEM"):
        issue_certificates("demo", [NodeIdentity("a")], old_ca_pem=b"junk")
    with pytest.raises(CertificateError, match="unique"):
        issue_certificates("demo", [NodeIdentity("a"), NodeIdentity("a")])
    with pytest.raises(CertificateError, match="not an IP"):
        issue_certificates("demo", [NodeIdentity("a", ips=("10.0.0.300",))])


def test_pki_problems_finds_a_ca_key_or_a_signer_that_does_not_belong():
    first = issue_certificates("demo", [NodeIdentity("n1")])
    second = issue_certificates("demo", [NodeIdentity("n1")])
    own = first.nodes["n1"].cert_pem
    assert pki_problems(first.ca_cert_pem, first.ca_key_pem, own) == []
    assert pki_problems(first.ca_cert_pem, second.ca_key_pem, own) == [
        "keys/ca.key is not the key of keys/ca.crt"
    ]
    assert pki_problems(second.ca_cert_pem, second.ca_key_pem, own) == [
        "the node certificate is not signed by keys/ca.crt"
    ]
    assert pki_problems(b"not PEM", first.ca_key_pem, own)[0].startswith(
        "a certificate or key cannot be read"
    )


def test_the_demo_ca_and_a_recovered_ca_are_built_alike(demo_set: DemoSet):
    """One builder (envstate.pki) makes both: the same critical CA constraints and key usage, and a
    subject key identifier that is the key's, whether the key is the demo's Ed25519 or a new EC one."""
    demo = x509.load_pem_x509_certificate((demo_set.env / "keys/ca.crt").read_bytes())
    recovered = x509.load_pem_x509_certificate(issue_certificates("demo", [NodeIdentity("n")]).ca_cert_pem)
    for ca in (demo, recovered):
        assert ca.issuer == ca.subject
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
        usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
        assert constraints.critical and constraints.value.ca
        assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
        ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert ski == x509.SubjectKeyIdentifier.from_public_key(ca.public_key())
        ca.verify_directly_issued_by(ca)
