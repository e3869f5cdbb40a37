"""Reading a backup set: listing its ISOs, opening each once, and getting verified bytes out.

An `IsoReader` walks the image's directory records once (isofs) and keeps the listing; the
manifest, backup_info and index are read from it on demand. Every byte handed out is checked:
`stream()` hashes while it yields and raises IntegrityError at the end of a file whose size or
SHA-256 differs from the manifest, so a caller writes to a temporary name and keeps the file
only when the stream ends cleanly. Encrypted files are opened with the set's data key, which
only the right passphrase unwraps. Nothing here trusts the set: signatures are checked against
the operator's trusted signers by `verify_signatures()`.
"""

from __future__ import annotations

import hashlib
import posixpath
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import fsspec

from omni_recovery.backupset import keys, layout, signing
from omni_recovery.backupset.index_db import RecoveryIndex, read_index
from omni_recovery.backupset.isofs import IsoEntry, IsoImage
from omni_recovery.backupset.manifest import (
    BackupInfo,
    Manifest,
    ManifestEntry,
    parse_backup_info,
    parse_manifest,
)
from omni_recovery.errors import BackupSetError, IntegrityError

METADATA_LIMIT = 256 * 1024 * 1024


@dataclass(frozen=True)
class SetMember:
    """One ISO file found in a set folder."""

    name: layout.IsoName
    url: str
    size: int


def list_backup_set(location: str) -> list[SetMember]:
    """The ISOs in a set folder (any fsspec URL), ordered by kind and sequence.

    Every `*.iso` file must be named as an ISO of a set, else it is refused by name; anything else
    (a checksum list, a README, a sub-folder, a `.partial` left by an interrupted write) is not part
    of the set and is left alone (`validate` names it)."""
    fs, root = fsspec.core.url_to_fs(location)
    if not fs.isdir(root):
        raise BackupSetError(f"{location} is not a folder")
    members = []
    for info in fs.ls(root, detail=True):
        base = posixpath.basename(info["name"].rstrip("/"))
        if not is_iso_file(base, info["type"]):
            continue
        name = layout.parse_iso_filename(base)
        url = fs.unstrip_protocol(info["name"])
        members.append(SetMember(name, url, int(info["size"])))
    if not members:
        raise BackupSetError(f"{location} holds no ISO files")
    order = {kind: i for i, kind in enumerate(layout.KINDS)}
    return sorted(members, key=lambda m: (m.name.backup_set_id, order[m.name.kind], m.name.sequence))


def is_iso_file(name: str, kind: str = "file") -> bool:
    """True for what a set folder's listing holds that belongs to the set: a file named `*.iso`."""
    return kind != "directory" and name.endswith(".iso")


@dataclass(frozen=True)
class DataKey:
    key_id: str
    key: bytes


class IsoReader:
    """One ISO of a set, opened once."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = posixpath.basename(url)
        self.image = IsoImage.open(url)

    def __enter__(self) -> IsoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.image.close()

    @cached_property
    def listing(self) -> dict[str, IsoEntry]:
        """Every entry of the image by path, from one walk of its directory records."""
        return {entry.path: entry for entry in self.image.walk()}

    def narrow_listing(self, keep: Callable[[str], bool]) -> None:
        """Walk the image once and keep only the entries whose path `keep` accepts as its listing: a
        reader that needs a few files of a large ISO does not hold an entry for every file of it."""
        self.__dict__["listing"] = {entry.path: entry for entry in self.image.walk() if keep(entry.path)}

    def raw(self, path: str, limit: int = METADATA_LIMIT) -> bytes:
        """The bytes of a file as stored, unchecked (for metadata that is checked by signature)."""
        return self.image.read_bytes(self._required(path), limit=limit)

    def raw_chunks(self, path: str, limit: int = METADATA_LIMIT) -> Iterator[bytes]:
        """`raw(path)` a block at a time, for a reader that need not hold the whole file."""
        entry = self._required(path)
        if entry.size > limit:
            raise BackupSetError(
                f"file is {entry.size} bytes, more than the {limit} bytes allowed here",
                iso=self.name,
                path=path,
            )
        return self.image.iter_chunks(entry)

    def _required(self, path: str) -> IsoEntry:
        """The listed file at `path`; BackupSetError naming the ISO and path when there is none."""
        entry = self.listing.get(path)
        if entry is None or entry.type != "file":
            raise BackupSetError("required file is missing from the image", iso=self.name, path=path)
        return entry

    @cached_property
    def manifest_bytes(self) -> bytes:
        return self.raw(layout.MANIFEST_PATH)

    @cached_property
    def manifest(self) -> Manifest:
        return parse_manifest(self.manifest_bytes, iso=self.name)

    @cached_property
    def manifest_entries(self) -> dict[str, ManifestEntry]:
        return {entry.path: entry for entry in self.manifest.files}

    @cached_property
    def backup_info_bytes(self) -> bytes:
        return self.raw(layout.BACKUP_INFO_PATH)

    @cached_property
    def backup_info(self) -> BackupInfo:
        return parse_backup_info(self.backup_info_bytes, iso=self.name)

    def verify_signatures(self, trusted: signing.TrustedSigners) -> str:
        """Check both signatures and that the signer is trusted; returns the signer's key id."""
        public = signing.load_public_key(
            self.raw(layout.SIGNER_PUB_PATH, 64 * 1024), iso=self.name, path=layout.SIGNER_PUB_PATH
        )
        for data, sig_path in (
            (self.manifest_bytes, layout.MANIFEST_SIG_PATH),
            (self.backup_info_bytes, layout.BACKUP_INFO_SIG_PATH),
        ):
            signing.verify(public, self.raw(sig_path, 1024), data, iso=self.name, path=sig_path)
        return trusted.check(public, iso=self.name, path=layout.SIGNER_PUB_PATH)

    def index(self) -> RecoveryIndex:
        """recovery_index.db, checked against the manifest, then read from a private temporary copy."""
        entry = self.manifest_entries.get(layout.INDEX_DB_PATH)
        if entry is None:
            raise BackupSetError(
                "the manifest does not list the recovery index", iso=self.name, path=layout.INDEX_DB_PATH
            )
        with tempfile.TemporaryDirectory(prefix="omni-index-") as tmp:
            copy = Path(tmp) / "recovery_index.db"
            with copy.open("wb") as out:
                for block in self.stream(entry):
                    out.write(block)
            return read_index(copy, iso=self.name)

    def verified_bytes(self, path: str, limit: int = METADATA_LIMIT) -> bytes:
        """A small listed file's bytes, checked against the manifest."""
        entry = self.manifest_entries.get(path)
        if entry is None:
            raise BackupSetError("file is not listed in the manifest", iso=self.name, path=path)
        return self.entry_bytes(entry, limit)

    def entry_bytes(self, entry: ManifestEntry, limit: int = METADATA_LIMIT) -> bytes:
        """The bytes of the small file `entry` lists, checked against it."""
        if entry.size > limit:
            raise BackupSetError(
                f"file of {entry.size} bytes is larger than the {limit} allowed here",
                iso=self.name,
                path=entry.path,
            )
        return b"".join(self.stream(entry))

    def stream(self, entry: ManifestEntry, block_size: int = 1 << 20) -> Iterator[bytes]:
        """The stored bytes of a listed file; IntegrityError at the end if they are not as listed."""
        image_entry = self.listing.get(entry.path)
        if image_entry is None or image_entry.type != "file":
            raise BackupSetError(
                "file listed in the manifest is missing from the image", iso=self.name, path=entry.path
            )
        if image_entry.size != entry.size:
            raise IntegrityError(
                f"size is {image_entry.size} bytes in the image, {entry.size} in the manifest",
                iso=self.name,
                path=entry.path,
            )
        digest = hashlib.sha256()
        for block in self.image.iter_chunks(image_entry, block_size):
            digest.update(block)
            yield block
        if digest.hexdigest() != entry.sha256:
            raise IntegrityError(
                f"sha256 is {digest.hexdigest()}, the manifest says {entry.sha256}",
                iso=self.name,
                path=entry.path,
            )

    def plaintext(self, entry: ManifestEntry, data_key: DataKey | None) -> Iterator[bytes]:
        """The file's content: stored bytes, decrypted and authenticated when the entry is encrypted."""
        if entry.encryption is None:
            yield from self.stream(entry)
            return
        if data_key is None:
            raise BackupSetError(
                "file is encrypted and no passphrase was given", iso=self.name, path=entry.path
            )
        if entry.encryption.key_id != data_key.key_id:
            raise BackupSetError(
                f"file is sealed with key {entry.encryption.key_id}, not the set's data key "
                f"{data_key.key_id}",
                iso=self.name,
                path=entry.path,
            )
        nonce = keys.unb64(entry.encryption.nonce, what="nonce", size=keys.NONCE_SIZE)
        opener = keys.Opener(data_key.key, nonce, entry.path, iso=self.name)
        digest, size = hashlib.sha256(), 0
        for block in keys.open_chunks(opener, self.stream(entry)):
            digest.update(block)
            size += len(block)
            yield block
        if size != entry.encryption.plaintext_size or digest.hexdigest() != entry.encryption.plaintext_sha256:
            raise IntegrityError(
                "decrypted content differs from plaintext_sha256/plaintext_size",
                iso=self.name,
                path=entry.path,
            )


def unlock_data_key(system_core: IsoReader, passphrase: bytes) -> DataKey:
    """Unwrap the set's data key from the system-core ISO; a wrong passphrase fails here, clearly."""
    info = system_core.backup_info
    enc = info.encryption
    try:
        params = enc["kdf_params"]
        kdf = keys.KdfSettings(
            keys.unb64(enc["salt"], what="salt"), int(params["n"]), int(params["r"]), int(params["p"])
        )
    except (KeyError, TypeError, ValueError, BackupSetError) as exc:
        raise BackupSetError(
            f"encryption settings are malformed: {exc}", iso=system_core.name, path=layout.BACKUP_INFO_PATH
        ) from exc
    if enc.get("kdf") != "scrypt" or enc.get("cipher") != keys.ALGORITHM:
        raise BackupSetError(
            f"unsupported key derivation {enc.get('kdf')!r} or cipher {enc.get('cipher')!r}",
            iso=system_core.name,
            path=layout.BACKUP_INFO_PATH,
        )
    document = system_core.verified_bytes(layout.DATA_KEY_PATH, 64 * 1024)
    key_id, key = keys.unwrap_data_key(
        keys.derive_kek(passphrase, kdf), document, iso=system_core.name, path=layout.DATA_KEY_PATH
    )
    if key_id.lower() != str(enc.get("key_id")).lower():
        raise BackupSetError(
            f"data key {key_id} is not the key {enc.get('key_id')} backup_info names",
            iso=system_core.name,
            path=layout.DATA_KEY_PATH,
        )
    return DataKey(key_id.lower(), key)  # as the manifests' key ids are held


def manifests_fingerprint(readers: Iterable[IsoReader]) -> str:
    """One sha256 over every ISO's name and manifest bytes: which exact set a validation was of.

    Raises BackupSetError when an ISO has no manifest.
    """
    lines = sorted(f"{r.name}\0{hashlib.sha256(r.manifest_bytes).hexdigest()}\n" for r in readers)
    return hashlib.sha256("".join(lines).encode()).hexdigest()
