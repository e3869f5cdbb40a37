"""Shallow checks of one ISO: what can be judged from its directory tree and metadata alone.

`open_iso` opens an image (walking its whole directory tree once) or says why it cannot;
`check_iso` then checks, collecting every problem rather than stopping at the first: the fixed
tree is present, both signatures verify and the signer is trusted, the manifest and
backup_info parse (paths safe, no duplicates), the ISO is what its file name says, the manifest
equals the image listing (nothing missing, nothing extra, symlink targets and types as listed),
sizes agree, the small metadata files hash as listed, the recovery index is readable, and the
parts of chunked files agree with one another. Checks that need the manifest are skipped when
it does not parse; that failure is itself reported.
Kept whole: one short function per check of the same opened ISO, run in order by `check_iso`.
"""

from __future__ import annotations

import hashlib
import posixpath
import stat
import weakref

from omni_recovery.backupset import layout, signing
from omni_recovery.backupset.index_db import RecoveryIndex
from omni_recovery.backupset.isofs import IsoEntry
from omni_recovery.backupset.manifest import ManifestEntry
from omni_recovery.backupset.reader import IsoReader
from omni_recovery.errors import BackupSetError
from omni_recovery.validate import problems as p
from omni_recovery.validate.problems import Problem

REQUIRED_PATHS: tuple[str, ...] = (
    layout.MANIFEST_PATH,
    layout.BACKUP_INFO_PATH,
    layout.INDEX_DB_PATH,
    layout.MANIFEST_SIG_PATH,
    layout.BACKUP_INFO_SIG_PATH,
    layout.SIGNER_PUB_PATH,
    layout.RECOVERY_LOG_PATH,
)
# What the trust problem expects when no trusted key was given at all (the checks may say so apart).
NO_TRUSTED_KEY = "a trusted key (--trusted-key)"
_SIGNATURE_LIMIT = 1024
_PUBLIC_KEY_LIMIT = 64 * 1024

# Each reader's parsed index (or the error it gave), so the set checks do not read it again.
_INDEXES: weakref.WeakKeyDictionary[IsoReader, RecoveryIndex | BackupSetError] = weakref.WeakKeyDictionary()


def open_iso(url: str) -> tuple[IsoReader | None, list[Problem]]:
    """Open one ISO and walk its tree; (None, [problem]) when the image is not readable."""
    name = posixpath.basename(url)
    try:
        reader = IsoReader(url)
    except BackupSetError as exc:
        return None, [p.from_error(p.IMAGE_STRUCTURE, exc, iso=name)]
    try:
        _ = reader.listing
    except BackupSetError as exc:
        reader.close()
        return None, [p.from_error(p.IMAGE_STRUCTURE, exc, iso=name)]
    return reader, []


def manifest_of(reader: IsoReader) -> list[ManifestEntry] | None:
    """The manifest's entries, or None when it does not parse (check_iso reports why)."""
    try:
        return reader.manifest.files
    except BackupSetError:
        return None


def stored_as_listed(listing: dict[str, IsoEntry], entry: ManifestEntry) -> IsoEntry | None:
    """The image's file for `entry` when it holds one of the listed size, the only files worth
    hashing (the listing and size checks report the others)."""
    image = listing.get(entry.path)
    if image is None or image.type != "file" or image.size != entry.size:
        return None
    return image


def index_of(reader: IsoReader) -> RecoveryIndex | BackupSetError:
    """The ISO's recovery index, read once (checked against the manifest), or the error it gave."""
    cached = _INDEXES.get(reader)
    if cached is None:
        try:
            cached = reader.index()
        except BackupSetError as exc:
            cached = exc
        _INDEXES[reader] = cached
    return cached


def check_iso(reader: IsoReader, trusted: signing.TrustedSigners) -> list[Problem]:
    """Every shallow problem of one opened ISO."""
    name = reader.name
    try:
        listing = reader.listing
    except BackupSetError as exc:
        return [p.from_error(p.IMAGE_STRUCTURE, exc, iso=name)]
    found: list[Problem] = []
    for path in REQUIRED_PATHS:
        entry = listing.get(path)
        if entry is None or entry.type != "file":
            found.append(
                p.error(
                    p.IMAGE_STRUCTURE,
                    "a file every ISO must hold is missing",
                    iso=name,
                    path=path,
                    expected="file",
                    found=entry.type if entry else "nothing",
                )
            )
    signer = _check_signatures(reader, trusted, found)

    try:
        manifest = reader.manifest
    except BackupSetError as exc:
        found.append(p.from_error(p.MANIFEST, exc, iso=name))
        manifest = None
    try:
        info = reader.backup_info
    except BackupSetError as exc:
        found.append(p.from_error(p.BACKUP_INFO, exc, iso=name))
        info = None
    # The format says "hex"; either case names the same key.
    if info is not None and signer is not None and str(info.signing.get("key_id")).lower() != signer:
        found.append(
            p.error(
                p.SIGNATURES,
                "the ISO is signed by another key than the one backup_info names",
                iso=name,
                path=layout.BACKUP_INFO_PATH,
                expected=info.signing.get("key_id"),
                found=signer,
            )
        )
    found.extend(_check_identity(reader))
    if manifest is None:
        return found

    entries = reader.manifest_entries
    found.extend(_check_listing(name, listing, entries))
    found.extend(_check_sizes(name, listing, entries))
    found.extend(_check_metadata(reader, entries))
    index = index_of(reader)
    if isinstance(index, BackupSetError):
        found.append(p.from_error(p.RECOVERY_INDEX, index, iso=name))
    found.extend(_check_chunk_entries(name, manifest.files))
    return found


def _check_signatures(reader: IsoReader, trusted: signing.TrustedSigners, found: list[Problem]) -> str | None:
    """Check both signatures and the signer's trust; returns the signer's key id when both verify."""
    name = reader.name
    try:
        public = signing.load_public_key(
            reader.raw(layout.SIGNER_PUB_PATH, _PUBLIC_KEY_LIMIT), iso=name, path=layout.SIGNER_PUB_PATH
        )
    except BackupSetError as exc:
        found.append(p.from_error(p.SIGNATURES, exc, iso=name))
        return None
    key_id = signing.key_id(public)
    verified = True
    for document, sig_path in (
        (layout.MANIFEST_PATH, layout.MANIFEST_SIG_PATH),
        (layout.BACKUP_INFO_PATH, layout.BACKUP_INFO_SIG_PATH),
    ):
        try:
            data = reader.manifest_bytes if document == layout.MANIFEST_PATH else reader.backup_info_bytes
            signing.verify(public, reader.raw(sig_path, _SIGNATURE_LIMIT), data, iso=name, path=sig_path)
        except BackupSetError as exc:
            verified = False
            found.append(
                p.error(
                    p.SIGNATURES,
                    f"the signature {posixpath.basename(sig_path)} does not verify over {document}: "
                    f"{exc.reason}",
                    iso=name,
                    path=document,
                    expected=f"a valid Ed25519 signature by {key_id}",
                    found="a signature that does not verify",
                )
            )
    try:
        trusted.check(public, iso=name, path=layout.SIGNER_PUB_PATH)
    except BackupSetError as exc:
        found.append(
            p.error(
                p.SIGNATURES,
                exc.reason,
                iso=name,
                path=layout.SIGNER_PUB_PATH,
                expected=", ".join(sorted(trusted.key_ids)) or NO_TRUSTED_KEY,
                found=key_id,
            )
        )
    return key_id if verified else None


def _check_identity(reader: IsoReader) -> list[Problem]:
    """The file name, the manifest and backup_info agree on set id, kind and sequence."""
    name = reader.name
    try:
        iso_name = layout.parse_iso_filename(name)
    except BackupSetError as exc:
        return [p.from_error(p.IDENTITY, exc, iso=name)]
    found: list[Problem] = []
    try:
        manifest = reader.manifest
    except BackupSetError:
        manifest = None
    if manifest is not None:
        said = (manifest.backup_set_id, manifest.kind, manifest.sequence)
        named = (iso_name.backup_set_id, iso_name.kind, iso_name.sequence)
        if said != named:
            found.append(
                p.error(
                    p.IDENTITY,
                    "the manifest's backup_set_id, kind and sequence differ from the ISO's file name",
                    iso=name,
                    path=layout.MANIFEST_PATH,
                    expected="/".join(map(str, named)),
                    found="/".join(map(str, said)),
                )
            )
    try:
        info = reader.backup_info
    except BackupSetError:
        return found
    if info.backup_set_id != iso_name.backup_set_id:
        found.append(
            p.error(
                p.IDENTITY,
                "backup_info's backup_set_id differs from the ISO's file name",
                iso=name,
                path=layout.BACKUP_INFO_PATH,
                expected=iso_name.backup_set_id,
                found=info.backup_set_id,
            )
        )
    return found


def _check_listing(
    name: str, listing: dict[str, IsoEntry], entries: dict[str, ManifestEntry]
) -> list[Problem]:
    """Nothing listed is missing from the image, nothing in the image is unlisted."""
    found: list[Problem] = []
    for path, entry in entries.items():
        image = listing.get(path)
        if entry.hardlink is not None:
            continue  # a later name of an inode is in the manifest only (see the set's hard link check)
        if image is None:
            found.append(
                p.error(
                    p.MANIFEST_LISTING,
                    "listed in the manifest but missing from the image",
                    iso=name,
                    path=path,
                    expected=entry.type,
                    found="nothing",
                )
            )
        elif image.type != entry.type:
            found.append(
                p.error(
                    p.MANIFEST_LISTING,
                    "the image holds another type of entry than the manifest lists",
                    iso=name,
                    path=path,
                    expected=entry.type,
                    found=image.type,
                )
            )
        elif entry.type == "symlink" and image.symlink_target != entry.target:
            found.append(
                p.error(
                    p.MANIFEST_LISTING,
                    "the symbolic link's target differs from the manifest",
                    iso=name,
                    path=path,
                    expected=entry.target,
                    found=image.symlink_target,
                )
            )
    implied = {parent for path in (*entries, *layout.UNLISTED_PATHS) for parent in _parents(path)}
    for path, image in listing.items():
        if path in entries or path in layout.UNLISTED_PATHS:
            continue
        if image.type == "dir" and path in implied:
            continue
        # An empty folder holds no file the manifest could be missing; it is never restored.
        report = p.warning if image.type == "dir" else p.error
        found.append(
            report(
                p.MANIFEST_LISTING,
                "present in the image but not listed in the manifest"
                + (" (an empty folder, not restored)" if image.type == "dir" else ""),
                iso=name,
                path=path,
                expected="nothing",
                found=image.type,
            )
        )
    return found


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _check_sizes(name: str, listing: dict[str, IsoEntry], entries: dict[str, ManifestEntry]) -> list[Problem]:
    found: list[Problem] = []
    for path, entry in entries.items():
        image = listing.get(path)
        if entry.type != "file" or image is None or image.type != "file":
            continue
        if image.size != entry.size:
            found.append(
                p.error(
                    p.SIZES,
                    f"size is {image.size} bytes in the image, {entry.size} in the manifest",
                    iso=name,
                    path=path,
                    expected=entry.size,
                    found=image.size,
                )
            )
        sealed_size = entry.chunk.logical_size if entry.chunk is not None else entry.size
        if entry.encryption is not None and entry.encryption.plaintext_size + 16 != sealed_size:
            found.append(
                p.error(
                    p.SIZES,
                    "an encrypted file's stored size (a chunked one's logical_size) must be its "
                    "plaintext_size plus the 16-byte tag",
                    iso=name,
                    path=path,
                    expected=entry.encryption.plaintext_size + 16,
                    found=sealed_size,
                )
            )
        if entry.chunk is not None and entry.size > entry.chunk.logical_size:
            found.append(
                p.error(
                    p.SIZES,
                    "a part is larger than the whole file it belongs to",
                    iso=name,
                    path=path,
                    expected=f"<= {entry.chunk.logical_size}",
                    found=entry.size,
                )
            )
        if image.mode is not None and stat.S_IMODE(image.mode) != stat.S_IMODE(entry.mode):
            found.append(
                p.warning(
                    p.MODES,
                    "the image's POSIX mode differs from the manifest's (the manifest's is restored)",
                    iso=name,
                    path=path,
                    expected=f"{stat.S_IMODE(entry.mode):o}",
                    found=f"{stat.S_IMODE(image.mode):o}",
                )
            )
    return found


def _check_metadata(reader: IsoReader, entries: dict[str, ManifestEntry]) -> list[Problem]:
    """backup_info.yaml and recovery.log are small: hash them against the manifest now."""
    found: list[Problem] = []
    for path in (layout.BACKUP_INFO_PATH, layout.RECOVERY_LOG_PATH):
        entry = entries.get(path)
        if entry is None:
            found.append(
                p.error(
                    p.MANIFEST_LISTING,
                    "the manifest does not list a file every ISO must hold",
                    iso=reader.name,
                    path=path,
                    expected="listed",
                    found="not listed",
                )
            )
            continue
        if stored_as_listed(reader.listing, entry) is None:
            continue  # reported by the listing and size checks
        try:
            data = reader.backup_info_bytes if path == layout.BACKUP_INFO_PATH else reader.raw(path)
        except BackupSetError as exc:
            found.append(p.from_error(p.METADATA_INTEGRITY, exc, iso=reader.name))
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry.sha256:
            found.append(
                p.error(
                    p.METADATA_INTEGRITY,
                    "the file's sha256 differs from the manifest",
                    iso=reader.name,
                    path=path,
                    expected=entry.sha256,
                    found=digest,
                )
            )
    return found


def _check_chunk_entries(name: str, files: list[ManifestEntry]) -> list[Problem]:
    """Parts of one file listed in this ISO agree on its count, size and digest."""
    found: list[Problem] = []
    first: dict[str, ManifestEntry] = {}
    for entry in files:
        if entry.chunk is None:
            continue
        seen = first.setdefault(entry.chunk.chunk_of, entry)
        assert seen.chunk is not None
        if entry.encryption != seen.encryption:
            logical = entry.chunk.chunk_of
            found.append(encryption_disagrees(p.CHUNK_ENTRIES, logical, iso=name, path=entry.path))
        mine = (entry.chunk.chunk_count, entry.chunk.logical_size, entry.chunk.logical_sha256)
        theirs = (seen.chunk.chunk_count, seen.chunk.logical_size, seen.chunk.logical_sha256)
        if mine != theirs:
            found.append(
                p.error(
                    p.CHUNK_ENTRIES,
                    f"parts of {entry.chunk.chunk_of} disagree on chunk_count/logical_size/logical_sha256",
                    iso=name,
                    path=entry.path,
                    expected="/".join(map(str, theirs)),
                    found="/".join(map(str, mine)),
                )
            )
    return found


def encryption_disagrees(check: str, logical: str, *, iso: str | None, path: str) -> Problem:
    """Parts of one file that do not all carry the same encryption (or none)."""
    return p.error(
        check,
        f"parts of {logical} disagree on their encryption (the parts of a sealed file all carry "
        "the encryption of the whole file)",
        iso=iso,
        path=path,
    )
