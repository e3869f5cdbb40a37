"""Applying what format 1.1 records of an entry to its restored copy: owner, mode, xattrs, mtime.

For one restored file, folder or symlink on a local root, in this order (each step undoes nothing
of the ones before it): the owner, by name first (the user and group names looked up on this
machine, as tar does) and by number where a name is unknown here or the operator asks for numeric
ids; the mode (again after the owner, since changing the owner clears setuid and setgid); the
extended attributes, POSIX ACLs among them (`system.posix_acl_access`/`_default`); last the mtime
to the nanosecond. The restorer calls this once a file's content is in place and, for folders,
after everything inside them, so nothing written later moves a folder's mtime again.

What can go wrong: a target that cannot take an owner (not running as root) or an attribute (a
filesystem without xattrs or ACLs) does not stop the restore. Each such refusal comes back as one
line naming the path, what was not applied and why; the restorer reports them all. A mode or
mtime that cannot be set is a TargetError, as for any other write.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omni_recovery.backupset.attributes import FileAttributes, mtime_ns
from omni_recovery.targets.driver import TargetRoot


@dataclass(frozen=True, slots=True)
class EntryMetadata:
    """What is applied to one restored entry: its mode, mtime (RFC 3339) and 1.1 attributes."""

    path: str
    type: str  # file, dir or symlink
    mode: int
    mtime: str | None
    attributes: FileAttributes | None


def apply_metadata(target: TargetRoot, entry: EntryMetadata, *, numeric_owner: bool = False) -> list[str]:
    """Apply `entry`'s metadata to its restored copy on the local `target`; the lines of what could
    not be applied (empty when everything was)."""
    full = target.resolve(entry.path)
    attributes = entry.attributes or FileAttributes()
    refused = _apply_owner(full, entry.path, attributes, numeric_owner)
    if entry.type != "symlink":
        target.chmod(entry.path, stat.S_IMODE(entry.mode))
        refused += _apply_xattrs(full, entry.path, attributes)
    if entry.mtime is not None:
        nanoseconds = mtime_ns(entry.mtime)
        try:
            os.utime(full, ns=(nanoseconds, nanoseconds), follow_symlinks=False)
        except OSError as exc:
            raise target.error(f"cannot set mtime: {exc}", entry.path) from exc
    return refused


def owner_ids(attributes: FileAttributes, numeric_owner: bool) -> tuple[int, int]:
    """The uid and gid to give: by name where this machine knows the name (unless `numeric_owner`),
    else the recorded number; -1 (leave as it is) where neither is recorded."""
    uid = attributes.uid if attributes.uid is not None else -1
    gid = attributes.gid if attributes.gid is not None else -1
    if not numeric_owner:
        uid = _by_name(pwd.getpwnam, attributes.user, uid)
        gid = _by_name(grp.getgrnam, attributes.group, gid)
    return uid, gid


def _by_name(lookup: Callable[[str], Any], name: str | None, number: int) -> int:
    if name is None:
        return number
    try:
        return int(lookup(name)[2])
    except KeyError:
        return number


def _apply_owner(full: str, path: str, attributes: FileAttributes, numeric_owner: bool) -> list[str]:
    uid, gid = owner_ids(attributes, numeric_owner)
    if (uid, gid) == (-1, -1):
        return []
    try:
        os.lchown(full, uid, gid)
    except OSError as exc:
        return [f"{path}: owner {uid}:{gid} not set: {exc.strerror}"]
    return []


def _apply_xattrs(full: str, path: str, attributes: FileAttributes) -> list[str]:
    refused = []
    for name, value in attributes.xattrs:
        try:
            os.setxattr(full, name, value, follow_symlinks=False)
        except OSError as exc:
            refused.append(f"{path}: extended attribute {name} not set: {exc.strerror}")
    return refused
