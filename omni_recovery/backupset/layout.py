"""Names of the backup-set format: ISO kinds, ISO file names, fixed paths, and the path rules.

Every path that comes out of a backup is checked here before it is used: relative POSIX,
NFC, no empty, `.` or `..` segment, no backslash or NUL. A set that breaks these rules is
refused, never repaired.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from omni_recovery.errors import BackupSetError, UnsafePathError

FORMAT = "omnicloud-backup/1"
# Version 1.1 adds optional owner, xattr, hard link, sparse and nanosecond mtime fields.
FORMAT_1_1 = "omnicloud-backup/1.1"
FORMATS = (FORMAT, FORMAT_1_1)

SYSTEM_CORE = "system-core"
DIRECTOR_STATE = "director-state"
ORCHESTRATOR_STATE = "orchestrator-state"
VOLUME_DATA = "volume-data"
APPLICATION_DEFINITION = "application-definition"
NETWORK_CONFIGURATION = "network-configuration"

KINDS: tuple[str, ...] = (
    SYSTEM_CORE,
    DIRECTOR_STATE,
    ORCHESTRATOR_STATE,
    VOLUME_DATA,
    APPLICATION_DEFINITION,
    NETWORK_CONFIGURATION,
)
# (minimum, maximum) number of ISOs of each kind in a set; None is unbounded.
KIND_COUNTS: dict[str, tuple[int, int | None]] = {
    SYSTEM_CORE: (1, 1),
    DIRECTOR_STATE: (1, None),
    ORCHESTRATOR_STATE: (1, None),
    VOLUME_DATA: (0, None),
    APPLICATION_DEFINITION: (1, None),
    NETWORK_CONFIGURATION: (1, 1),
}

MANIFEST_PATH = "metadata/manifest.json"
BACKUP_INFO_PATH = "metadata/backup_info.yaml"
INDEX_DB_PATH = "metadata/recovery_index.db"
SIGNATURE_DIR = "metadata/digital_signature"
MANIFEST_SIG_PATH = f"{SIGNATURE_DIR}/manifest.json.sig"
BACKUP_INFO_SIG_PATH = f"{SIGNATURE_DIR}/backup_info.yaml.sig"
SIGNER_PUB_PATH = f"{SIGNATURE_DIR}/signer.pub"
RECOVERY_LOG_PATH = "recovery.log"
DATA_KEY_PATH = "data/keys/data-key.json"
UNLISTED_PATHS = frozenset({MANIFEST_PATH, MANIFEST_SIG_PATH, BACKUP_INFO_SIG_PATH, SIGNER_PUB_PATH})

# The largest file ISO 9660 stores in one extent; bigger files are split into parts.
MAX_CHUNK_SIZE = 4 * 1024**3 - 1

SET_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_ISO_NAME = re.compile(
    r"(?P<set_id>[a-z0-9][a-z0-9-]{0,62})_(?P<kind>" + "|".join(KINDS) + r")_(?P<sequence>\d{3,})\.iso"
)


@dataclass(frozen=True, order=True)
class IsoName:
    """The parts of an ISO file name: `{backup_set_id}_{kind}_{sequence:03d}.iso`."""

    backup_set_id: str
    kind: str
    sequence: int

    @property
    def filename(self) -> str:
        return iso_filename(self.backup_set_id, self.kind, self.sequence)


def iso_filename(backup_set_id: str, kind: str, sequence: int) -> str:
    """The file name of one ISO of a set."""
    if not SET_ID_PATTERN.fullmatch(backup_set_id):
        raise BackupSetError(f"backup_set_id {backup_set_id!r} does not match [a-z0-9][a-z0-9-]{{0,62}}")
    if kind not in KINDS:
        raise BackupSetError(f"unknown ISO kind {kind!r}")
    if sequence < 1:
        raise BackupSetError(f"sequence {sequence} must start at 1")
    return f"{backup_set_id}_{kind}_{sequence:03d}.iso"


def parse_iso_filename(filename: str) -> IsoName:
    """Split an ISO file name into set id, kind and sequence, refusing any other name."""
    base = posixpath.basename(filename)
    match = _ISO_NAME.fullmatch(base)
    if not match:
        raise BackupSetError(
            "not a backup-set ISO name (expected {backup_set_id}_{kind}_{sequence:03d}.iso)", iso=base
        )
    sequence = int(match["sequence"])
    if sequence < 1:
        raise BackupSetError("sequence must start at 1", iso=base)
    return IsoName(match["set_id"], match["kind"], sequence)


def check_relative_path(path: str, *, iso: str | None = None) -> str:
    """Return `path` if it is a clean relative POSIX path in NFC, else raise UnsafePathError."""
    if not isinstance(path, str) or not path:
        raise UnsafePathError("empty or non-text path", iso=iso, path=repr(path))
    problem = _path_problem(path)
    if problem:
        raise UnsafePathError(problem, iso=iso, path=path)
    return path


def _path_problem(path: str) -> str | None:
    if "\x00" in path:
        return "path contains a NUL character"
    if "\\" in path:
        return "path contains a backslash"
    if path.startswith("/"):
        return "path is absolute"
    if unicodedata.normalize("NFC", path) != path:
        return "path is not in Unicode NFC"
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            return f"path has a {segment or 'empty'!r} segment" if segment else "path has an empty segment"
    return None


def is_within(root: str, path: str) -> bool:
    """True when the POSIX `path` (relative to `root`'s parent folder logic) stays inside `root`."""
    normalized = posixpath.normpath(path)
    return normalized == root or normalized.startswith(root.rstrip("/") + "/")


def chunk_part_path(logical_path: str, index: int) -> str:
    """The stored path of part `index` of a chunked file."""
    return f"{logical_path}.part-{index:05d}"


MAX_SYMLINK_HOPS = 40  # as Linux follows at most 40 links in one path


def resolve_symlinks(path: str, links: Mapping[str, str]) -> str | None:
    """Where the symlink at `path` leads when it and every symlink of `links` (path → relative target)
    met on the way are followed, as a normalised relative path ("" for the top); None when the way
    climbs above the top or goes round in a loop.

    Folders are walked one segment at a time, as the kernel does, so a target that is harmless
    as text but passes through another link is judged by where it really ends."""
    if links[path].startswith("/"):
        return None
    current: list[str] = posixpath.dirname(path).split("/") if posixpath.dirname(path) else []
    pending = deque(links[path].split("/"))
    hops = 0
    while pending:
        segment = pending.popleft()
        if segment in ("", "."):
            continue
        if segment == "..":
            if not current:
                return None
            current.pop()
            continue
        candidate = "/".join([*current, segment])
        target = links.get(candidate)
        if target is None:
            current.append(segment)
            continue
        hops += 1
        if hops > MAX_SYMLINK_HOPS or target.startswith("/"):
            return None
        pending.extendleft(reversed(target.split("/")))
    return "/".join(current)


_LEAP_SECOND = re.compile(r"(T\d\d:\d\d):60")


def parse_time(value: str) -> datetime:
    """An RFC 3339 time (`T`/`Z` in either case, any fraction of a second; a leap second is read
    as :59; a time without an offset, which RFC 3339 does not allow, as UTC); ValueError when it is
    no ISO 8601 time at all."""
    text = _LEAP_SECOND.sub(r"\1:59", value.strip().upper())
    parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
