"""Key material of a backup set: passphrase → scrypt key-encryption key → wrapped data key, and
AES-256-GCM sealing of sensitive files with the file's path as associated data.

Sealing and opening stream: memory does not grow with a file's size. Opening releases
plaintext before the tag is checked (GCM cannot do otherwise when streaming), so callers
write it to a temporary name and keep it only once `finalize()` succeeds.
What can go wrong: a wrong passphrase fails at unwrapping the data key (PassphraseError),
before anything is decrypted; a ciphertext that was altered or moved to another path fails
its tag check (IntegrityError).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from omni_recovery.errors import BackupSetError, IntegrityError, PassphraseError

ALGORITHM = "AES-256-GCM"
TAG_SIZE = 16
NONCE_SIZE = 12
DEFAULT_KDF_PARAMS: dict[str, int] = {"n": 32768, "r": 8, "p": 1}
_BLOCK = 1 << 20


@dataclass(frozen=True)
class KdfSettings:
    salt: bytes
    n: int
    r: int
    p: int

    @classmethod
    def new(cls) -> KdfSettings:
        return cls(salt=secrets.token_bytes(16), **DEFAULT_KDF_PARAMS)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any, *, what: str, size: int | None = None) -> bytes:
    """Decode base64 from an untrusted document, checking the decoded length where one is fixed. The
    padding may be left out and the URL-safe alphabet used (other writers' encoders differ so)."""
    try:
        if isinstance(text, str):
            plain = text.strip().replace("-", "+").replace("_", "/")
            data = base64.b64decode(plain + "=" * (-len(plain) % 4), validate=True)
        else:
            data = None
    except ValueError:
        data = None
    if data is None or (size is not None and len(data) != size):
        expected = f"{size} bytes of " if size is not None else ""
        raise BackupSetError(f"{what} is not {expected}base64")
    return data


def derive_kek(passphrase: bytes, kdf: KdfSettings) -> bytes:
    """The 32-byte key-encryption key from the recovery passphrase."""
    if not passphrase:
        raise PassphraseError("the recovery passphrase is empty")
    if not (2 <= kdf.n <= 1 << 22 and kdf.n & (kdf.n - 1) == 0 and 1 <= kdf.r <= 64 and 1 <= kdf.p <= 16):
        raise BackupSetError(f"scrypt parameters n={kdf.n} r={kdf.r} p={kdf.p} are out of range")
    return Scrypt(salt=kdf.salt, length=32, n=kdf.n, r=kdf.r, p=kdf.p).derive(passphrase)


def new_data_key() -> tuple[str, bytes]:
    """A fresh 256-bit data key and its id."""
    return secrets.token_hex(16), secrets.token_bytes(32)


def wrap_data_key(kek: bytes, key_id: str, data_key: bytes) -> bytes:
    """The contents of data/keys/data-key.json."""
    nonce = secrets.token_bytes(NONCE_SIZE)
    wrapped = AESGCM(kek).encrypt(nonce, data_key, key_id.encode("ascii"))
    document = {"key_id": key_id, "nonce": b64(nonce), "wrapped": b64(wrapped)}
    return json.dumps(document, indent=2).encode("utf-8") + b"\n"


def unwrap_data_key(kek: bytes, document: bytes, *, iso: str, path: str) -> tuple[str, bytes]:
    """Open data-key.json with the key-encryption key; a wrong passphrase fails here."""
    try:
        parsed = json.loads(document)
        key_id, nonce, wrapped = parsed["key_id"], parsed["nonce"], parsed["wrapped"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupSetError(f"malformed data key document: {exc}", iso=iso, path=path) from exc
    if not isinstance(key_id, str):
        raise BackupSetError("key_id is not text", iso=iso, path=path)
    try:
        nonce_bytes = unb64(nonce, what="nonce", size=NONCE_SIZE)
        wrapped_bytes = unb64(wrapped, what="wrapped key", size=32 + TAG_SIZE)
    except BackupSetError as exc:
        raise BackupSetError(exc.reason, iso=iso, path=path) from exc
    try:
        return key_id, AESGCM(kek).decrypt(nonce_bytes, wrapped_bytes, key_id.encode("utf-8"))
    except InvalidTag as exc:
        raise PassphraseError(
            "the recovery passphrase does not unwrap the data key (wrong passphrase?)", iso=iso, path=path
        ) from exc


@dataclass(frozen=True)
class SealedFile:
    """What sealing a file produced: the manifest's encryption fields and the stored bytes' digest."""

    key_id: str
    nonce: bytes
    plaintext_sha256: str
    plaintext_size: int
    stored_sha256: str
    stored_size: int

    def manifest_fields(self) -> dict[str, Any]:
        return {
            "alg": ALGORITHM,
            "key_id": self.key_id,
            "nonce": b64(self.nonce),
            "plaintext_sha256": self.plaintext_sha256,
            "plaintext_size": self.plaintext_size,
        }


def seal_file(data_key: bytes, key_id: str, path: str, source: BinaryIO, target: BinaryIO) -> SealedFile:
    """Encrypt `source` into `target` (ciphertext then tag), bound to the file's stored `path`."""
    nonce = secrets.token_bytes(NONCE_SIZE)
    encryptor = Cipher(algorithms.AES(data_key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(path.encode("utf-8"))
    plain_hash, stored_hash = hashlib.sha256(), hashlib.sha256()
    plain_size = 0
    while block := source.read(_BLOCK):
        plain_hash.update(block)
        plain_size += len(block)
        sealed = encryptor.update(block)
        stored_hash.update(sealed)
        target.write(sealed)
    tail = encryptor.finalize() + encryptor.tag
    stored_hash.update(tail)
    target.write(tail)
    return SealedFile(
        key_id, nonce, plain_hash.hexdigest(), plain_size, stored_hash.hexdigest(), plain_size + TAG_SIZE
    )


class Opener:
    """Streaming AES-256-GCM decryption of one stored file; the last 16 bytes are the tag."""

    def __init__(self, data_key: bytes, nonce: bytes, path: str, *, iso: str | None = None) -> None:
        self._key, self._nonce, self._path, self._iso = data_key, nonce, path, iso
        self._held = b""
        self._decryptor: Any = None

    def update(self, stored: bytes) -> bytes:
        """Feed stored bytes; returns plaintext, holding back what may be the tag."""
        buffered = self._held + stored
        self._held = buffered[-TAG_SIZE:]
        body = buffered[:-TAG_SIZE]
        return self._cipher().update(body) if body else b""

    def finalize(self) -> bytes:
        """Check the tag; raises IntegrityError when the bytes or their path were altered."""
        if len(self._held) != TAG_SIZE:
            raise IntegrityError(
                "encrypted file is shorter than its authentication tag", iso=self._iso, path=self._path
            )
        decryptor = self._cipher()
        try:
            return bytes(decryptor.finalize_with_tag(self._held))
        except InvalidTag as exc:
            raise IntegrityError(
                "encrypted file fails authentication (altered, truncated, moved to another path, "
                "or sealed with another data key)",
                iso=self._iso,
                path=self._path,
            ) from exc

    def _cipher(self) -> Any:
        if self._decryptor is None:
            self._decryptor = Cipher(algorithms.AES(self._key), modes.GCM(self._nonce)).decryptor()
            self._decryptor.authenticate_additional_data(self._path.encode("utf-8"))
        return self._decryptor


def open_chunks(opener: Opener, stored: Iterable[bytes]) -> Iterator[bytes]:
    """Decrypt a stream of stored chunks; the final authentication happens at the end."""
    for chunk in stored:
        plain = opener.update(chunk)
        if plain:
            yield plain
    tail = opener.finalize()
    if tail:
        yield tail
