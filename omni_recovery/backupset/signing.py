"""Ed25519 signing of a set's manifest.json and backup_info.yaml, and the operator's trust in signers.

A signature only shows that whoever holds the private key wrote the bytes; `signer.pub` inside
an ISO proves nothing by itself. A set is trusted only when its signer matches a public key
file or key id the operator supplies (`TrustedSigners`). Key ids are the hex SHA-256 of the
raw 32-byte public key.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from omni_recovery.errors import RecoveryError, SignatureError

_KEY_ID = re.compile(r"[0-9a-f]{64}")
TRUSTED_KEY_ENV = "OMNI_RECOVERY_TRUSTED_KEY"


def trusted_specs(given: tuple[str, ...]) -> list[str]:
    """Trusted keys given by the operator, then those of OMNI_RECOVERY_TRUSTED_KEY (comma-separated)."""
    from_env = [spec.strip() for spec in os.environ.get(TRUSTED_KEY_ENV, "").split(",") if spec.strip()]
    return [*given, *from_env]


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate_signing_key(path: Path) -> tuple[str, Path]:
    """Write a new private key (PEM PKCS#8, mode 0600) at `path` and its public key at `path.pub`."""
    if path.exists():
        raise RecoveryError(f"{path} already exists; refusing to overwrite a signing key")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    pub_path = path.with_name(path.name + ".pub")
    pub_path.write_bytes(public_pem(private.public_key()))
    return key_id(private.public_key()), pub_path


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise RecoveryError(f"{path}: cannot load an Ed25519 private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise RecoveryError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key(pem: bytes, *, iso: str | None = None, path: str | None = None) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"not a PEM public key: {exc}", iso=iso, path=path) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError("signer key is not Ed25519", iso=iso, path=path)
    return key


def verify(public_key: Ed25519PublicKey, signature: bytes, data: bytes, *, iso: str, path: str) -> None:
    """Raise SignatureError unless `signature` is the signer's over exactly `data`."""
    if len(signature) != 64:
        raise SignatureError(f"signature must be 64 bytes, found {len(signature)}", iso=iso, path=path)
    try:
        public_key.verify(signature, data)
    except InvalidSignature as exc:
        raise SignatureError(
            "signature does not verify: the signed file or its signature was altered", iso=iso, path=path
        ) from exc


@dataclass(frozen=True)
class TrustedSigners:
    """The key ids the operator trusts, from public key files or key ids given as text."""

    key_ids: frozenset[str]

    @classmethod
    def from_specs(cls, specs: list[str]) -> TrustedSigners:
        """Each spec is a 64-hex key id or the path of a PEM public key (or of a private key's .pub)."""
        ids = set()
        for spec in specs:
            spec = spec.strip()
            if _KEY_ID.fullmatch(spec.lower()):
                ids.add(spec.lower())
                continue
            try:
                pem = Path(spec).read_bytes()
            except OSError as exc:
                raise RecoveryError(
                    f"trusted key {spec!r} is neither a 64-hex key id nor a readable file"
                ) from exc
            ids.add(key_id(load_public_key(pem, path=spec)))
        return cls(frozenset(ids))

    def check(self, public_key: Ed25519PublicKey, *, iso: str, path: str) -> str:
        """The signer's key id, when trusted; SignatureError otherwise."""
        signer = key_id(public_key)
        if not self.key_ids:
            raise SignatureError(
                "no trusted signer given (--trusted-key or OMNI_RECOVERY_TRUSTED_KEY)", iso=iso, path=path
            )
        if signer not in self.key_ids:
            raise SignatureError(f"signer {signer} is not among the trusted keys", iso=iso, path=path)
        return signer
