"""What a check found: one `Problem` per fault, with the names of the checks that find them.

A Problem is data, never an exception: checks collect them so that one bad ISO does not hide
the problems of the others. Errors the reader raises on purpose (BackupSetError and its
subclasses carry `.iso`, `.path` and `.reason`) become Problems through `from_error`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from omni_recovery.errors import BackupSetError

Severity = Literal["error", "warning"]

# Per ISO (shallow).
IMAGE_STRUCTURE = "image_structure"
SIGNATURES = "signatures"
MANIFEST = "manifest"
BACKUP_INFO = "backup_info"
IDENTITY = "identity"
MANIFEST_LISTING = "manifest_listing"
SIZES = "sizes"
METADATA_INTEGRITY = "metadata_integrity"
RECOVERY_INDEX = "recovery_index"
CHUNK_ENTRIES = "chunk_entries"
MODES = "modes"
# Over the whole set (shallow).
SET_LOCATION = "set_location"
SET_MEMBERSHIP = "set_membership"
SET_COMPLETENESS = "set_completeness"
SEQUENCE = "sequence"
KIND_COUNTS = "kind_counts"
BACKUP_INFO_CONSISTENT = "backup_info_consistent"
REFERENCES = "references"
DUPLICATE_PATHS = "duplicate_paths"
CHUNKS = "chunks"
HARDLINKS = "hardlinks"
# Deep.
PASSPHRASE = "passphrase"
FILE_HASHES = "file_hashes"
ENCRYPTION = "encryption"
CHUNK_REASSEMBLY = "chunk_reassembly"

ISO_CHECKS: tuple[str, ...] = (
    IMAGE_STRUCTURE,
    SIGNATURES,
    MANIFEST,
    BACKUP_INFO,
    IDENTITY,
    MANIFEST_LISTING,
    SIZES,
    METADATA_INTEGRITY,
    RECOVERY_INDEX,
    CHUNK_ENTRIES,
    MODES,
)
SET_CHECKS: tuple[str, ...] = (
    SET_LOCATION,
    SET_MEMBERSHIP,
    SET_COMPLETENESS,
    SEQUENCE,
    KIND_COUNTS,
    BACKUP_INFO_CONSISTENT,
    REFERENCES,
    DUPLICATE_PATHS,
    CHUNKS,
    HARDLINKS,
)
DEEP_CHECKS: tuple[str, ...] = (PASSPHRASE, FILE_HASHES, ENCRYPTION, CHUNK_REASSEMBLY)


@dataclass(frozen=True)
class Problem:
    """One fault: which check found it, where (ISO and path), what was expected and what was found.

    `blocking` problems make a set unsafe to restore from; in this package every `error` is
    blocking and every `warning` is not, so the severity alone says it (and is what the database
    stores)."""

    severity: Severity
    check: str
    iso: str | None
    path: str | None
    expected: str | None
    found: str | None
    message: str
    blocking: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def error(
    check: str,
    message: str,
    *,
    iso: str | None = None,
    path: str | None = None,
    expected: object = None,
    found: object = None,
) -> Problem:
    """A blocking problem."""
    return Problem("error", check, iso, path, _text(expected), _text(found), message, True)


def warning(
    check: str,
    message: str,
    *,
    iso: str | None = None,
    path: str | None = None,
    expected: object = None,
    found: object = None,
) -> Problem:
    """A problem worth showing that does not make the set unsafe."""
    return Problem("warning", check, iso, path, _text(expected), _text(found), message, False)


def from_error(check: str, exc: BackupSetError, *, iso: str | None = None) -> Problem:
    """A blocking Problem from an error the reader raised, keeping its ISO, path and reason."""
    return error(check, exc.reason, iso=exc.iso or iso, path=exc.path)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


class Progress(Protocol):
    """`progress(phase, amount, total)`: `amount` more units done in `phase` ("check" counts ISOs,
    "hash" bytes); a call with `total` set announces how many units the phase will take."""

    def __call__(self, phase: str, amount: int, total: int | None = None) -> None: ...


def no_progress(phase: str, amount: int, total: int | None = None) -> None:
    """A Progress that shows nothing."""
