import base64
import io

import pytest

from omni_recovery.backupset import keys
from omni_recovery.errors import BackupSetError, IntegrityError, PassphraseError

FAST_KDF = keys.KdfSettings(salt=b"s" * 16, n=1024, r=8, p=1)


def seal(data: bytes, path: str = "data/applications/a/secrets.json") -> tuple[bytes, keys.SealedFile, bytes]:
    key_id, key = keys.new_data_key()
    out = io.BytesIO()
    sealed = keys.seal_file(key, key_id, path, io.BytesIO(data), out)
    return out.getvalue(), sealed, key


def decrypt(stored: bytes, key: bytes, nonce: bytes, path: str, block: int = 7) -> bytes:
    opener = keys.Opener(key, nonce, path, iso="x.iso")
    chunks = [stored[i : i + block] for i in range(0, len(stored), block)]
    return b"".join(keys.open_chunks(opener, chunks))


def test_wrap_and_unwrap_data_key_round_trip():
    kek = keys.derive_kek(b"right", FAST_KDF)
    key_id, key = keys.new_data_key()
    document = keys.wrap_data_key(kek, key_id, key)
    assert keys.unwrap_data_key(kek, document, iso="a.iso", path="data/keys/data-key.json") == (key_id, key)


def test_wrong_passphrase_fails_at_unwrapping_naming_iso_and_path():
    key_id, key = keys.new_data_key()
    document = keys.wrap_data_key(keys.derive_kek(b"right", FAST_KDF), key_id, key)
    with pytest.raises(PassphraseError, match=r"a\.iso: data/keys/data-key\.json: .*wrong passphrase"):
        keys.unwrap_data_key(
            keys.derive_kek(b"wrong", FAST_KDF), document, iso="a.iso", path="data/keys/data-key.json"
        )


def test_sealed_file_decrypts_in_any_chunking_and_records_digests():
    data = bytes(range(256)) * 1000
    stored, sealed, key = seal(data)
    assert len(stored) == len(data) + keys.TAG_SIZE == sealed.stored_size
    assert sealed.plaintext_size == len(data)
    for block in (1, 15, 16, 17, 4096, len(stored)):
        assert decrypt(stored, key, sealed.nonce, "data/applications/a/secrets.json", block) == data


def test_sealed_file_fails_at_another_path():
    stored, sealed, key = seal(b"secret")
    with pytest.raises(IntegrityError, match="moved to another path"):
        decrypt(stored, key, sealed.nonce, "data/applications/b/secrets.json")


def test_flipped_byte_and_truncation_fail_authentication():
    stored, sealed, key = seal(b"secret value " * 100)
    flipped = bytearray(stored)
    flipped[5] ^= 1
    with pytest.raises(IntegrityError):
        decrypt(bytes(flipped), key, sealed.nonce, "data/applications/a/secrets.json")
    with pytest.raises(IntegrityError):
        decrypt(stored[:10], key, sealed.nonce, "data/applications/a/secrets.json")


def test_empty_passphrase_refused():
    with pytest.raises(PassphraseError):
        keys.derive_kek(b"", FAST_KDF)


def test_base64_without_padding_or_in_the_url_safe_alphabet_decodes_the_same() -> None:
    raw = bytes(range(250, 256)) + b"\xfb\xff" + bytes(8)  # 16 bytes whose base64 holds + and /
    padded = base64.b64encode(raw).decode()
    assert "+" in padded or "/" in padded
    for text in (padded, padded.rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")):
        assert keys.unb64(text, what="salt", size=16) == raw
    for bad in ("not base64!", padded[:-4], 42):
        with pytest.raises(BackupSetError):
            keys.unb64(bad, what="salt", size=16)
