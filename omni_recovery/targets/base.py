"""What every target root shares: its errors and entries, the temporary names files are written
under, and the rule a restored symlink must follow.

A file is written under `.{name}.omni-partial` in its own folder (`partial_relpath`; a name too long
for that is cut short with a digest of it) and renamed onto its name once whole. A symlink may only
lie inside a volume's `volumes/{app}/{vol}/files/` tree and must resolve, from its own folder, to a
place inside that same tree (`check_symlink_target`, the manifest's rule).

What can go wrong: a symlink outside a files/ tree or pointing out of it raises UnsafePathError;
every failure of a root raises TargetError naming the root and the path.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass

from omni_recovery.backupset.layout import check_relative_path, is_within
from omni_recovery.backupset.names import utf8_prefix
from omni_recovery.errors import RecoveryError, UnsafePathError

PARTIAL_SUFFIX = ".omni-partial"
NAME_MAX = 255  # bytes in one file name (ext4, xfs, tmpfs, btrfs …): a temporary name must fit too


class TargetError(RecoveryError):
    """Writing to a target root failed; names the root and the path."""

    def __init__(self, message: str, *, root: str | None = None, path: str | None = None) -> None:
        self.root = root
        self.path = path
        self.reason = message
        where = ": ".join(part for part in (root, path) if part)
        super().__init__(f"{where}: {message}" if where else message)


@dataclass(frozen=True)
class TargetEntry:
    """One entry under a target root, as `TargetRoot.listing()` reports it."""

    path: str
    type: str  # "file", "dir" or "symlink"
    size: int
    mode: int | None
    target: str | None = None


@dataclass(frozen=True)
class FreeSpace:
    """The free space of the filesystem a local root lies on."""

    device: int  # st_dev: roots on one filesystem share its free space
    free: int  # bytes a writer without root's reserve may still use


def partial_relpath(relpath: str) -> str:
    """The temporary name a file is written under before it is renamed onto `relpath`:
    `.{name}.omni-partial`; for a name too long for that to fit in NAME_MAX bytes, the name cut
    short (whole characters) with a digest of all of it, so that it is still one name per file."""
    folder, name = posixpath.split(relpath)
    hidden = f".{name}{PARTIAL_SUFFIX}"
    if len(hidden.encode("utf-8", "surrogateescape")) > NAME_MAX:
        digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        head = utf8_prefix(name, NAME_MAX - len(f".~{digest}{PARTIAL_SUFFIX}"))
        hidden = f".{head}~{digest}{PARTIAL_SUFFIX}"
    return posixpath.join(folder, hidden) if folder else hidden


def _volume_files_root(relpath: str) -> str | None:
    parts = relpath.split("/")
    if len(parts) >= 5 and parts[0] == "volumes" and parts[3] == "files":
        return "/".join(parts[:4])
    return None


def check_symlink_target(relpath: str, target: str) -> str:
    """Refuse a symlink at `relpath` unless its target stays inside the same volume's files/ tree.

    The rule is the manifest's (see backupset.manifest): the link must lie inside
    `volumes/{app}/{vol}/files/`, its target must be a relative POSIX path, and the target,
    resolved from the link's own folder, must stay inside that same files/ tree.
    """
    check_relative_path(relpath)
    files_root = _volume_files_root(relpath)
    if files_root is None:
        raise UnsafePathError("a symlink must lie inside a volume's files/ tree", path=relpath)
    if not target or target.startswith("/") or "\x00" in target or "\\" in target:
        raise UnsafePathError(f"symlink target {target!r} must be a relative POSIX path", path=relpath)
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relpath), target))
    if resolved == files_root or not is_within(files_root, resolved):
        raise UnsafePathError(f"symlink target {target!r} leaves {files_root}/", path=relpath)
    return target
