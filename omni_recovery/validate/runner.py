"""`validate`: run every check over a set folder and gather one report.

Order: list the folder (anything that is not an ISO of a set is a problem, not an exception);
open each ISO and run `check_iso` on it, in a thread pool; run `check_set` over all of them;
with `deep`, unlock the data key and hash everything. The deep work is cut into units, biggest
first: runs of files of one ISO of about `_UNIT_BYTES` (parts of chunked files included, each
checked against its own sha256), and one unit per chunked file that reads its parts again in
order for its logical_sha256. The units are spread over `parallel_factor` threads; hashlib and preadv
release the GIL, so a chunked file's two digests are computed at once on two cores (bench/deep_validation.py).
"""

from __future__ import annotations

import functools
import posixpath
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import fsspec

from omni_recovery.backupset import layout, signing
from omni_recovery.backupset.manifest import ManifestEntry
from omni_recovery.backupset.reader import DataKey, IsoReader, is_iso_file, manifests_fingerprint
from omni_recovery.errors import BackupSetError
from omni_recovery.safe_text import safe_text
from omni_recovery.validate import problems as p
from omni_recovery.validate.deep import (
    Slice,
    deep_check_chunks,
    deep_check_iso,
    in_slice,
    unauthenticated_note,
    unlock,
)
from omni_recovery.validate.iso_checks import check_iso, manifest_of, open_iso, stored_as_listed
from omni_recovery.validate.problems import Problem, Progress, no_progress
from omni_recovery.validate.report import ValidationReport
from omni_recovery.validate.set_checks import check_set, set_identity
from omni_recovery.validate.set_files import chunk_parts

_UNIT_BYTES = 256 << 20


def list_set_folder(location: str) -> tuple[dict[str, str], list[Problem]]:
    """ISO file name → URL for every file of the folder named like an ISO of a set, and a problem for
    anything else in it (a stray file, a sub-folder, an unfinished `.partial`)."""
    try:
        fs, root = fsspec.core.url_to_fs(location)
        if not fs.isdir(root):
            return {}, [p.error(p.SET_LOCATION, f"{location} is not a folder", path=location)]
        infos = fs.ls(root, detail=True)
    except (OSError, ValueError) as exc:
        return {}, [p.error(p.SET_LOCATION, f"cannot list {location}: {exc}", path=location)]
    urls: dict[str, str] = {}
    found: list[Problem] = []
    for info in infos:
        base = posixpath.basename(info["name"].rstrip("/"))
        if not is_iso_file(base, info["type"]):
            found.append(p.warning(p.SET_MEMBERSHIP, _not_in_the_set(base, info["type"]), iso=base))
            continue
        try:
            layout.parse_iso_filename(base)
        except BackupSetError as exc:
            found.append(p.from_error(p.SET_MEMBERSHIP, exc, iso=base))
            continue
        urls[base] = fs.unstrip_protocol(info["name"])
    if not urls:
        found.append(p.error(p.SET_COMPLETENESS, f"{location} holds no ISO files", path=location))
    return dict(sorted(urls.items(), key=lambda item: _order(item[0]))), found


def _not_in_the_set(name: str, kind: str) -> str:
    what = (
        "a folder"
        if kind == "directory"
        else "an unfinished file from an interrupted write"
        if name.endswith(".partial")
        else "not an ISO file"
    )
    return f"{what}: not part of the set, left alone (the set is judged by its iso_set)"


def _order(name: str) -> tuple[str, int, int]:
    parsed = layout.parse_iso_filename(name)
    return parsed.backup_set_id, layout.KINDS.index(parsed.kind), parsed.sequence


def validate(
    location: str,
    trusted: signing.TrustedSigners,
    passphrase: bytes | None = None,
    *,
    deep: bool = False,
    parallel_factor: int = 2,
    progress: Progress = no_progress,
    subset: Slice | None = None,
) -> ValidationReport:
    """Validate the set in the folder (or fsspec URL) `location`; nothing is restored or written.
    With `subset` (and `deep`), only that slice of the stored bytes is hashed (`in_slice`)."""
    started = datetime.now(UTC)
    workers = max(1, parallel_factor)
    urls, problems = list_set_folder(location)
    readers: dict[str, IsoReader | None] = {}
    per_iso: dict[str, list[Problem]] = {}
    progress("check", 0, len(urls))

    def shallow(name: str) -> tuple[IsoReader | None, list[Problem]]:
        reader, found = open_iso(urls[name])
        if reader is not None:
            try:
                found.extend(check_iso(reader, trusted))
            except OSError as exc:  # the file vanished or the storage failed mid-way
                found.append(p.error(p.IMAGE_STRUCTURE, f"cannot read the image: {exc}", iso=name))
        progress("check", 1)
        return reader, found

    bytes_hashed = 0
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="omni-check") as pool:
            for name, (reader, found) in zip(urls, pool.map(shallow, urls), strict=True):
                readers[name] = reader
                per_iso[name] = found
            for found in per_iso.values():
                problems.extend(found)
            problems.extend(check_set(readers))
            if deep and subset is not None:
                deep_problems, subset = _deep_slice(readers, passphrase, pool, progress, subset)
                bytes_hashed = subset.slice_bytes
                problems.extend(deep_problems)
            elif deep:
                deep_problems, bytes_hashed = _deep(readers, passphrase, pool, progress)
                problems.extend(deep_problems)
        info = _set_info(readers)
        fingerprint = _fingerprint(readers)
    finally:
        for reader in readers.values():
            if reader is not None:
                reader.close()
    return ValidationReport(
        run_id=str(uuid.uuid4()),
        location=location,
        backup_set_id=set_identity(list(urls)),
        deep=deep,
        started_at=started,
        finished_at=datetime.now(UTC),
        isos=list(urls),
        problems=_dedupe(problems),
        # The signer is recorded only when every ISO's signatures verified against a trusted key.
        signer_key_id=None if any(pr.check == p.SIGNATURES for pr in problems) else info.get("signer_key_id"),
        set_info={k: v for k, v in info.items() if k != "signer_key_id"},
        bytes_hashed=bytes_hashed,
        manifests_sha256=fingerprint,
        subset=subset if deep else None,
    )


def _fingerprint(readers: dict[str, IsoReader | None]) -> str | None:
    """The set's manifests fingerprint, when every ISO could be opened and has a manifest."""
    opened = [r for r in readers.values() if r is not None]
    if not opened or len(opened) != len(readers):
        return None
    try:
        return manifests_fingerprint(opened)
    except (BackupSetError, OSError):
        return None


def _deep(
    readers: dict[str, IsoReader | None],
    passphrase: bytes | None,
    pool: ThreadPoolExecutor,
    progress: Progress,
) -> tuple[list[Problem], int]:
    data_key, problems = unlock(readers, passphrase)
    usable = _usable(readers)
    units: list[tuple[int, Callable[[], list[Problem]]]] = []
    for reader in usable.values():
        units.extend(_iso_units(reader, data_key, progress, _stored_files(reader)))
    for logical, pieces in chunk_parts(usable).items():
        check = functools.partial(
            deep_check_chunks, usable, progress, only=[logical], part_hashes=False, data_key=data_key
        )
        units.append((_stored_size(usable, pieces), check))
    return _run_units(units, problems, pool, progress)


def _deep_slice(
    readers: dict[str, IsoReader | None],
    passphrase: bytes | None,
    pool: ThreadPoolExecutor,
    progress: Progress,
    subset: Slice,
) -> tuple[list[Problem], Slice]:
    """Hash one slice: the files and whole chunked files whose middle byte falls in it, each byte
    read once (a chunked file's parts are hashed in the same pass as the whole)."""
    data_key, problems = unlock(readers, passphrase)
    usable = _usable(readers)
    order = {name: i for i, name in enumerate(usable)}
    # (place in the set, stored bytes, ISO, a file of it or the logical path of a chunked file)
    placed: list[tuple[tuple[int, int], int, str, ManifestEntry | str]] = []
    for name, reader in usable.items():
        for entry in _stored_files(reader):
            if entry.chunk is None:
                placed.append(((order[name], reader.listing[entry.path].offset), entry.size, name, entry))
    for logical, pieces in chunk_parts(usable).items():
        first_iso, first = pieces[0]
        where = (order[first_iso], usable[first_iso].listing[first.path].offset)
        placed.append((where, _stored_size(usable, pieces), first_iso, logical))
    placed.sort(key=lambda unit: unit[0])
    wanted = in_slice([u[1] for u in placed], subset.index, subset.count)
    chosen = [unit for unit, inside in zip(placed, wanted, strict=True) if inside]
    units: list[tuple[int, Callable[[], list[Problem]]]] = []
    for name, reader in usable.items():
        files = [what for _, _, iso, what in chosen if iso == name and not isinstance(what, str)]
        units.extend(_iso_units(reader, data_key, progress, files))
    for _, size, _, what in chosen:
        if isinstance(what, str):
            check = functools.partial(deep_check_chunks, usable, progress, only=[what], data_key=data_key)
            units.append((size, check))
    found, hashed = _run_units(units, problems, pool, progress)
    return found, Slice(subset.index, subset.count, hashed, sum(u[1] for u in placed))


def _usable(readers: dict[str, IsoReader | None]) -> dict[str, IsoReader]:
    return {name: r for name, r in readers.items() if r is not None and manifest_of(r) is not None}


def _stored_files(reader: IsoReader) -> list[ManifestEntry]:
    """The listed files stored as listed, in the order of their offsets in the image."""
    listing = reader.listing
    files = [
        e for e in manifest_of(reader) or [] if e.type == "file" and stored_as_listed(listing, e) is not None
    ]
    files.sort(key=lambda e: listing[e.path].offset if e.path in listing else -1)
    return files


def _stored_size(usable: dict[str, IsoReader], pieces: list[tuple[str, ManifestEntry]]) -> int:
    return sum(e.size for iso, e in pieces if stored_as_listed(usable[iso].listing, e) is not None)


def _iso_units(
    reader: IsoReader, data_key: DataKey | None, progress: Progress, files: list[ManifestEntry]
) -> list[tuple[int, Callable[[], list[Problem]]]]:
    """`files` of one ISO cut into runs of about _UNIT_BYTES, each one deep unit."""
    units: list[tuple[int, Callable[[], list[Problem]]]] = []
    batch: list[ManifestEntry] = []
    size = 0
    for entry in files:
        batch.append(entry)
        size += entry.size
        if size >= _UNIT_BYTES:
            units.append((size, _iso_unit(reader, data_key, progress, batch)))
            batch, size = [], 0
    if batch:
        units.append((size, _iso_unit(reader, data_key, progress, batch)))
    return units


def _run_units(
    units: list[tuple[int, Callable[[], list[Problem]]]],
    problems: list[Problem],
    pool: ThreadPoolExecutor,
    progress: Progress,
) -> tuple[list[Problem], int]:
    """Run the deep units on `pool`, biggest first; their problems after `problems`, and the bytes."""
    total = sum(size for size, _ in units)
    progress("hash", 0, total)
    # Bigger units first, so that one large file does not start last and run alone.
    units.sort(key=lambda unit: -unit[0])
    for found in pool.map(_guarded, units):
        problems.extend(found)
    encrypted_note = [pr for pr in problems if pr.check == p.ENCRYPTION and pr.path is None]
    merged = [pr for pr in problems if pr not in encrypted_note]
    merged.extend(_merge_unauthenticated(encrypted_note))
    merged.sort(key=lambda pr: (pr.check != p.PASSPHRASE, pr.iso or "", pr.path or "", pr.check))
    return merged, total


def _guarded(unit: tuple[int, Callable[[], list[Problem]]]) -> list[Problem]:
    """Run one deep unit; a storage failure becomes a problem instead of ending the whole run."""
    try:
        return unit[1]()
    except OSError as exc:
        return [p.error(p.FILE_HASHES, f"reading failed: {exc}")]


def _iso_unit(
    reader: IsoReader, data_key: DataKey | None, progress: Progress, batch: list[ManifestEntry]
) -> Callable[[], list[Problem]]:
    entries = list(batch)
    return lambda: deep_check_iso(reader, data_key, progress, entries=entries)


def _merge_unauthenticated(notes: list[Problem]) -> list[Problem]:
    """One 'could not be authenticated' problem per ISO, however many units it was cut into."""
    counts: dict[str | None, int] = {}
    for note in notes:
        counts[note.iso] = counts.get(note.iso, 0) + int((note.found or "0").split()[0])
    return [unauthenticated_note(iso, n) for iso, n in counts.items()]


def _set_info(readers: dict[str, IsoReader | None]) -> dict[str, Any]:
    """What the database needs to know of the set, from system-core's backup_info (else any)."""
    ordered = sorted(readers.items(), key=lambda item: f"_{layout.SYSTEM_CORE}_" not in item[0])
    for _, reader in ordered:
        if reader is None:
            continue
        try:
            info = reader.backup_info
        except BackupSetError:
            continue
        key_id = info.signing.get("key_id")
        return {
            "created_at": info.created_at,
            "omnicloud_version": info.omnicloud_version,
            "source_environment": info.source_environment,
            "iso_count": len(info.iso_set),
            "signer_key_id": key_id if isinstance(key_id, str) else None,
        }
    return {}


def _dedupe(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


# -- one call per Dagster asset check ------------------------------------------------------------
# A thin `@asset_check` opens nothing itself: it calls one of these with the URLs the catalog
# registered and turns the problems into an AssetCheckResult (`passed_and_metadata`).


def check_iso_url(url: str, trusted: signing.TrustedSigners) -> list[Problem]:
    """The shallow problems of the ISO at `url` (per-ISO check on an ingest partition)."""
    reader, found = open_iso(url)
    if reader is not None:
        with reader:
            found.extend(check_iso(reader, trusted))
    return found


def check_set_urls(urls: dict[str, str]) -> list[Problem]:
    """The set-level problems of every ISO file name → URL of a set (a check on the catalog)."""
    readers: dict[str, IsoReader | None] = {}
    found: list[Problem] = []
    try:
        for name, url in urls.items():
            reader, problems = open_iso(url)
            readers[name] = reader
            found.extend(problems)
        found.extend(check_set(readers))
    finally:
        for reader in readers.values():
            if reader is not None:
                reader.close()
    return found


def deep_check_iso_url(url: str, data_key: DataKey | None, progress: Progress = no_progress) -> list[Problem]:
    """Every byte of the ISO at `url` hashed, chunk parts included (deep per-ISO check); the
    reassembly of chunked files is set-level: `deep_check_chunks(readers, part_hashes=False)`."""
    reader, found = open_iso(url)
    if reader is not None:
        with reader:
            found.extend(deep_check_iso(reader, data_key, progress))
    return found


def passed_and_metadata(problems: list[Problem]) -> tuple[bool, dict[str, Any]]:
    """What an AssetCheckResult needs: passed (no blocking problem) and plain metadata values
    (counts, and the problems as a Markdown table for `MetadataValue.md`)."""
    rows = [
        "| severity | check | ISO | path | expected | found | message |",
        "|---|---|---|---|---|---|---|",
        *(
            "| "
            + " | ".join(
                _cell(v) for v in (pr.severity, pr.check, pr.iso, pr.path, pr.expected, pr.found, pr.message)
            )
            + " |"
            for pr in problems
        ),
    ]
    metadata: dict[str, Any] = {
        "errors": sum(1 for pr in problems if pr.severity == "error"),
        "warnings": sum(1 for pr in problems if pr.severity == "warning"),
        "blocking": sum(1 for pr in problems if pr.blocking),
        "problems_markdown": "\n".join(rows) if problems else "no problems",
    }
    return not any(pr.blocking for pr in problems), metadata


def _cell(value: str | None) -> str:
    """A Markdown table cell: a set's content escaped (safe_text), and its `|` too."""
    if value is None:
        return "-"
    return safe_text(value).replace("|", "\\|")
