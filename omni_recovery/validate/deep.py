"""Deep checks: every stored byte hashed against the manifest, chunked files reassembled, encrypted
files authenticated with the set's data key.

How it works: bytes are read straight from the image at each file's extents (known from the
directory walk), with large `preadv` reads (backupset.extents) into a page-aligned buffer (see
backupset.hashing: several times faster than into a bytearray), and fed to hashlib, which releases
the GIL, so several threads hash at once. Files of one ISO are read in the order of their offsets. The parts
of a chunked file are read in order across the ISOs holding them for the whole file's
`logical_sha256` (and, unless `validate` checks the parts in other threads, each part's own
digest in the same pass). An encrypted file is also decrypted
as it streams and its GCM tag checked; the plaintext is thrown away. Nothing is written anywhere.

What can go wrong: a file whose size differs from the manifest is not hashed (the shallow size
check reports it); a short read (the image ends early) becomes a problem naming the file; a
wrong passphrase is one `passphrase` problem, and each ISO holding encrypted files then says
they could not be authenticated. Remote (non-`file://`) images are read through fsspec with
the same buffer, more slowly.
Kept whole: the per-ISO hashing and the chunked files' reassembly share one streaming and
decryption path (`_stream`, `_opener`, `_Decryption`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass

from omni_recovery.backupset import keys, layout
from omni_recovery.backupset.extents import ExtentReader
from omni_recovery.backupset.hashing import aligned_buffer
from omni_recovery.backupset.manifest import Encryption, ManifestEntry
from omni_recovery.backupset.reader import DataKey, IsoReader, unlock_data_key
from omni_recovery.backupset.sparse import LogicalDigest
from omni_recovery.errors import BackupSetError, IntegrityError, PassphraseError
from omni_recovery.validate import problems as p
from omni_recovery.validate.iso_checks import manifest_of, stored_as_listed
from omni_recovery.validate.problems import Problem, Progress, no_progress
from omni_recovery.validate.set_files import chunk_parts

BLOCK = 1 << 20
_REPORT_EVERY = 16 << 20


@dataclass(frozen=True)
class Slice:
    """The `index`-th (from 1) of `count` deterministic slices of a set's stored bytes, and, once
    hashed, the bytes it held and the set's stored bytes in all."""

    index: int
    count: int
    slice_bytes: int = 0
    set_bytes: int = 0


def in_slice(sizes: Sequence[int], index: int, count: int) -> list[bool]:
    """Which units (files in stored order: ISO by ISO, by extent; `sizes` in bytes) slice `index` of
    `count` hashes. A unit belongs to the slice holding its middle byte, so every unit is in exactly
    one slice and each slice is a contiguous run of about 1/count of the bytes."""
    total = max(sum(sizes), 1)
    chosen, start = [], 0
    for size in sizes:
        slot = min((2 * start + size) * count // (2 * total), count - 1)
        chosen.append(slot + 1 == index)
        start += size
    return chosen


def unlock(
    readers: Mapping[str, IsoReader | None], passphrase: bytes | None
) -> tuple[DataKey | None, list[Problem]]:
    """The set's data key from its system-core ISO, or the problem that prevented it."""
    cores = [r for name, r in readers.items() if r is not None and f"_{layout.SYSTEM_CORE}_" in name]
    if passphrase is None:
        return None, [
            p.error(
                p.PASSPHRASE,
                "no recovery passphrase given (--passphrase-file or OMNI_RECOVERY_PASSPHRASE): "
                "encrypted files cannot be authenticated",
                path=layout.DATA_KEY_PATH,
            )
        ]
    if not cores:
        return None, [p.error(p.PASSPHRASE, "no readable system-core ISO holds the data key")]
    core = cores[0]
    try:
        return unlock_data_key(core, passphrase), []
    except PassphraseError as exc:
        return None, [
            p.error(
                p.PASSPHRASE,
                exc.reason,
                iso=exc.iso or core.name,
                path=exc.path,
                expected="the passphrase the set was written with",
                found="a passphrase that does not unwrap the data key",
            )
        ]
    except BackupSetError as exc:
        return None, [p.from_error(p.PASSPHRASE, exc, iso=core.name)]


class _Counter:
    """Batches progress reports so that threads do not call the bar for every block."""

    def __init__(self, progress: Progress) -> None:
        self.progress, self.pending = progress, 0

    def add(self, amount: int) -> None:
        self.pending += amount
        if self.pending >= _REPORT_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.progress("hash", self.pending)
            self.pending = 0


def _stream(
    source: ExtentReader,
    extents: Sequence[tuple[int, int]],
    buffer: memoryview,
    path: str,
    counter: _Counter,
) -> Iterator[memoryview]:
    """Views of the bytes at `extents`, each living until the next; IntegrityError if the image ends early."""
    for offset, length in extents:
        for block in source.blocks(offset, length, buffer, path):
            got = len(block)
            yield block
            counter.add(got)


def deep_check_iso(
    reader: IsoReader,
    data_key: DataKey | None,
    progress: Progress = no_progress,
    *,
    entries: Sequence[ManifestEntry] | None = None,
    skip_chunk_parts: bool = False,
) -> list[Problem]:
    """Hash every listed file of one ISO (or `entries` of it) and authenticate its encrypted files.

    With `skip_chunk_parts`, parts of chunked files are left to `deep_check_chunks`, which
    reads them once for both their own and their whole file's digest."""
    files = manifest_of(reader)
    if files is None:
        return [
            p.error(p.FILE_HASHES, "the manifest does not parse, so nothing could be hashed", iso=reader.name)
        ]
    chosen = [
        e
        for e in (entries if entries is not None else files)
        if e.type == "file" and not (skip_chunk_parts and e.chunk is not None)
    ]
    listing = reader.listing
    chosen.sort(key=lambda e: listing[e.path].offset if e.path in listing else -1)
    found: list[Problem] = []
    unauthenticated = 0
    counter = _Counter(progress)
    with closing(ExtentReader(reader.url, reader.name)) as source, aligned_buffer(BLOCK) as buffer:
        for entry in chosen:
            image = stored_as_listed(listing, entry)
            if image is None:
                continue  # reported by the shallow listing and size checks
            opener = None
            # A sealed file's parts are authenticated together, by deep_check_chunks.
            if entry.encryption is not None and entry.chunk is None:
                if data_key is None:
                    unauthenticated += 1
                else:
                    opener = _opener(reader.name, entry, entry.path, data_key, found)
            found.extend(_hash_one(reader.name, source, entry, image.extents, buffer, counter, opener))
    counter.flush()
    if unauthenticated:
        found.append(unauthenticated_note(reader.name, unauthenticated))
    return found


def unauthenticated_note(iso: str | None, count: int) -> Problem:
    """That `count` encrypted files of `iso` could not be authenticated (no data key)."""
    return p.error(
        p.ENCRYPTION,
        f"{count} encrypted file(s) could not be authenticated without the data key",
        iso=iso,
        expected="authenticated",
        found=f"{count} not authenticated",
    )


def _opener(
    iso: str, entry: ManifestEntry, associated: str, data_key: DataKey, found: list[Problem]
) -> keys.Opener | None:
    """The decryption of `entry`'s stored bytes (sealed under the path `associated`), or None and a
    problem in `found` when it cannot be had."""
    assert entry.encryption is not None
    if entry.encryption.key_id != data_key.key_id:
        found.append(
            p.error(
                p.ENCRYPTION,
                "the file is sealed with another key than the set's data key",
                iso=iso,
                path=entry.path,
                expected=data_key.key_id,
                found=entry.encryption.key_id,
            )
        )
        return None
    try:
        nonce = keys.unb64(entry.encryption.nonce, what="nonce", size=keys.NONCE_SIZE)
    except BackupSetError as exc:
        found.append(p.error(p.ENCRYPTION, exc.reason, iso=iso, path=entry.path))
        return None
    return keys.Opener(data_key.key, nonce, associated, iso=iso)


class _Decryption:
    """A sealed file decrypted as its stored bytes stream by; the plaintext is only hashed."""

    def __init__(self, opener: keys.Opener, encryption: Encryption) -> None:
        self.opener, self.encryption = opener, encryption
        self.plain, self.size = hashlib.sha256(), 0

    def update(self, block: memoryview) -> None:
        out = self.opener.update(bytes(block))
        self.plain.update(out)
        self.size += len(out)

    def finish(self, iso: str, path: str) -> list[Problem]:
        """The tag checked, then the plaintext against plaintext_sha256/plaintext_size."""
        try:
            tail = self.opener.finalize()
        except IntegrityError as exc:
            return [
                p.error(
                    p.ENCRYPTION,
                    exc.reason,
                    iso=iso,
                    path=path,
                    expected="authentic AES-256-GCM ciphertext",
                    found="authentication failed",
                )
            ]
        self.plain.update(tail)
        self.size += len(tail)
        enc = self.encryption
        if (self.plain.hexdigest(), self.size) == (enc.plaintext_sha256, enc.plaintext_size):
            return []
        return [
            p.error(
                p.ENCRYPTION,
                "the decrypted content differs from plaintext_sha256/plaintext_size",
                iso=iso,
                path=path,
                expected=f"{enc.plaintext_sha256} ({enc.plaintext_size} bytes)",
                found=f"{self.plain.hexdigest()} ({self.size} bytes)",
            )
        ]


def _hash_one(
    iso: str,
    source: ExtentReader,
    entry: ManifestEntry,
    extents: Sequence[tuple[int, int]],
    buffer: memoryview,
    counter: _Counter,
    opener: keys.Opener | None,
) -> list[Problem]:
    digest = hashlib.sha256()
    decryption = _Decryption(opener, entry.encryption) if opener and entry.encryption else None
    sparse = entry.attributes.sparse if entry.attributes else None
    logical = LogicalDigest(sparse.ranges, sparse.logical_size) if sparse else None
    try:
        for block in _stream(source, extents, buffer, entry.path, counter):
            digest.update(block)
            if decryption is not None:
                decryption.update(block)
            if logical is not None:
                logical.update(block)
    except IntegrityError as exc:
        return [p.error(p.FILE_HASHES, exc.reason, iso=iso, path=entry.path, expected=entry.size)]
    found = decryption.finish(iso, entry.path) if decryption is not None else []
    if digest.hexdigest() != entry.sha256:
        found.insert(0, _stored_mismatch(iso, entry, digest.hexdigest()))
    elif sparse is not None and logical is not None:
        found.extend(_sparse_mismatch(iso, entry.path, sparse.logical_sha256, logical))
    return found


def _sparse_mismatch(iso: str, path: str, expected: str, logical: LogicalDigest) -> list[Problem]:
    """The sparse file's whole (its ranges at their offsets, holes as zeros) against logical_sha256."""
    digest = logical.hexdigest()  # the stored bytes matched their sha256, so they fill the ranges
    if digest == expected:
        return []
    message = "the sparse file's data ranges, holes read as zeros, differ from its logical_sha256"
    return [p.error(p.FILE_HASHES, message, iso=iso, path=path, expected=expected, found=digest)]


def _stored_mismatch(iso: str, entry: ManifestEntry, digest: str) -> Problem:
    return p.error(
        p.FILE_HASHES,
        "the stored bytes' sha256 differs from the manifest",
        iso=iso,
        path=entry.path,
        expected=entry.sha256,
        found=digest,
    )


def deep_check_chunks(
    readers: Mapping[str, IsoReader | None],
    progress: Progress = no_progress,
    *,
    only: Sequence[str] | None = None,
    part_hashes: bool = True,
    data_key: DataKey | None = None,
) -> list[Problem]:
    """Reassemble each chunked file (or those in `only`) across the ISOs holding its parts: every part's
    sha256 and the whole file's logical_sha256 and logical_size, from one read of each part. A
    sealed file's parts (the ciphertext and tag of the whole, sealed under the logical path) are
    also decrypted in order and authenticated with `data_key`.

    With `part_hashes=False` only the whole file is hashed: `validate` checks the parts as files of
    their ISOs in other threads, so the two digests of each byte are computed in parallel.

    Files whose parts are incomplete or inconsistent are skipped: the shallow `chunks` check
    reports them."""
    found: list[Problem] = []
    counter = _Counter(progress)
    for logical, pieces in sorted(chunk_parts(readers).items()):
        if only is not None and logical not in only:
            continue
        found.extend(_reassemble(logical, pieces, readers, counter, part_hashes, data_key))
    counter.flush()
    return found


def _reassemble(
    logical: str,
    pieces: list[tuple[str, ManifestEntry]],
    readers: Mapping[str, IsoReader | None],
    counter: _Counter,
    part_hashes: bool,
    data_key: DataKey | None,
) -> list[Problem]:
    chunks = [e.chunk for _, e in pieces if e.chunk is not None]
    if not chunks or [c.chunk_index for c in chunks] != list(range(chunks[0].chunk_count)):
        return []
    if len({(c.chunk_count, c.logical_size, c.logical_sha256) for c in chunks}) > 1:
        return []
    if len({e.encryption for _, e in pieces}) > 1:
        return []
    whole = hashlib.sha256()
    size = 0
    found: list[Problem] = []
    decryption = _sealed_whole(logical, pieces, data_key, found)
    sources: dict[str, ExtentReader] = {}
    try:
        with aligned_buffer(BLOCK) as buffer:
            for iso, entry in pieces:
                reader = readers[iso]
                assert reader is not None
                image = stored_as_listed(reader.listing, entry)
                if image is None:
                    return found  # reported by the shallow checks; the whole cannot be judged
                if iso not in sources:
                    sources[iso] = ExtentReader(reader.url, reader.name)
                part = hashlib.sha256()
                try:
                    for block in _stream(sources[iso], image.extents, buffer, entry.path, counter):
                        if part_hashes:
                            part.update(block)
                        whole.update(block)
                        size += len(block)
                        if decryption is not None:
                            decryption.update(block)
                except IntegrityError as exc:
                    found.append(p.error(p.FILE_HASHES, exc.reason, iso=iso, path=entry.path))
                    return found
                if part_hashes and part.hexdigest() != entry.sha256:
                    found.append(_stored_mismatch(iso, entry, part.hexdigest()))
    finally:
        for source in sources.values():
            source.close()
    if decryption is not None:
        found.extend(decryption.finish(pieces[-1][0], logical))
    expected = chunks[0]
    if (whole.hexdigest(), size) != (expected.logical_sha256, expected.logical_size):
        found.append(
            p.error(
                p.CHUNK_REASSEMBLY,
                f"the reassembled file differs from its logical_sha256/logical_size ({len(chunks)} parts)",
                iso=", ".join(dict.fromkeys(iso for iso, _ in pieces)),
                path=logical,
                expected=f"{expected.logical_sha256} ({expected.logical_size} bytes)",
                found=f"{whole.hexdigest()} ({size} bytes)",
            )
        )
    return found


def _sealed_whole(
    logical: str, pieces: list[tuple[str, ManifestEntry]], data_key: DataKey | None, found: list[Problem]
) -> _Decryption | None:
    """For the parts of a sealed file, its decryption (or a note in `found` that it cannot be had)."""
    iso, first = pieces[0]
    if first.encryption is None:
        return None
    if data_key is None:
        found.append(unauthenticated_note(iso, 1))
        return None
    opener = _opener(iso, first, logical, data_key, found)
    return _Decryption(opener, first.encryption) if opener is not None else None
