"""Applying what format 1.1 records of an entry to its restored copy: owner, mode, xattrs, mtime.

For one restored file, folder or symlink on a local or SSH root, in this order (each step undoes
nothing of the ones before it): the owner, by name first (the user and group names looked up on this
machine, as tar does, each name once per restore: `LocalAccounts`) and by number where a name is
unknown here or the operator asks for numeric ids; the mode (again after the owner, since changing
the owner clears setuid and setgid; a file that got its mode when put in place only then); the
extended attributes, POSIX ACLs among them (`system.posix_acl_access`/`_default`); last the mtime to
the nanosecond. The restorer calls this once a file's content is in place and, for folders, after
everything inside them, so nothing written later moves a folder's mtime again. An SSH root gets what
SFTP can set: the owner (names looked up on the target host), mode and mtime.

What can go wrong: a target that cannot take an owner (not running as root) or an attribute (a
filesystem without xattrs or ACLs, any xattr over SFTP) does not stop the restore. Each such refusal
comes back as one line naming the path, what was not applied and why; the restorer reports them all.
A mode or mtime that cannot be set is a TargetError, as for any other write.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omni_recovery.backupset.attributes import FileAttributes, mtime_ns
from omni_recovery.targets import ssh_root
from omni_recovery.targets.driver import PartialFile, TargetRoot

if TYPE_CHECKING:
    from omni_recovery.targets.ssh import SshRoot
    from omni_recovery.targets.ssh_attributes import AttributeChange

NameLookup = Callable[[str], int | None]
SETID_BITS = stat.S_ISUID | stat.S_ISGID


@dataclass(frozen=True, slots=True)
class EntryMetadata:
    """What is applied to one restored entry: its mode, mtime (RFC 3339) and 1.1 attributes."""

    path: str
    type: str  # file, dir or symlink
    mode: int
    mtime: str | None
    attributes: FileAttributes | None


class LocalAccounts:
    """The uid and gid of user and group names on this machine, each name looked up once (an unknown
    name too): one restore asks about the same few names for every file, and each NSS lookup reads
    the account databases again."""

    def __init__(self) -> None:
        self._users: dict[str, int | None] = {}
        self._groups: dict[str, int | None] = {}

    def user_id(self, name: str) -> int | None:
        return _cached(self._users, name, pwd.getpwnam)

    def group_id(self, name: str) -> int | None:
        return _cached(self._groups, name, grp.getgrnam)


def _cached(known: dict[str, int | None], name: str, lookup: Callable[[str], Any]) -> int | None:
    if name not in known:
        known[name] = _local_id(lookup)(name)
    return known[name]


def apply_metadata(
    target: TargetRoot,
    entry: EntryMetadata,
    *,
    numeric_owner: bool = False,
    accounts: LocalAccounts | None = None,
    mode_set: bool = False,
) -> list[str]:
    """Apply `entry`'s metadata to its restored copy on the local or SSH `target`; the lines of what
    could not be applied (empty when everything was). `accounts` keeps the names looked up on this
    machine between the calls of one restore; `mode_set`: the file got its mode when put in place."""
    remote = ssh_root(target)
    if remote is not None:
        return apply_over_sftp(remote, [entry], numeric_owner)
    full = target.resolve(entry.path)
    attributes = entry.attributes or FileAttributes()
    refused = _apply_owner(full, entry.path, attributes, numeric_owner, accounts or LocalAccounts())
    if entry.type != "symlink":
        if not mode_set or entry.mode & SETID_BITS:  # the only bits a new owner clears
            target.chmod(entry.path, stat.S_IMODE(entry.mode))
        refused += _apply_xattrs(full, entry.path, attributes)
    if entry.mtime is not None:
        nanoseconds = mtime_ns(entry.mtime)
        try:
            os.utime(full, ns=(nanoseconds, nanoseconds), follow_symlinks=False)
        except OSError as exc:
            raise target.error(f"cannot set mtime: {exc}", entry.path) from exc
    return refused


class FileSettler:
    """Gives files written to a local root what `apply_metadata` gives them (owner, mode, xattrs,
    mtime to the nanosecond, in that order) through their temporary file before its rename, so that
    no second pass looks their paths up again. Remembers the files it settled and, as lines, what
    could not be applied; shared by the restore's threads."""

    def __init__(self, target: TargetRoot, numeric_owner: bool, accounts: LocalAccounts) -> None:
        self.target, self.numeric_owner, self.accounts = target, numeric_owner, accounts
        self.settled: set[str] = set()
        self.refused: list[str] = []

    def settle(self, entry: EntryMetadata, mtime_ns: int | None, out: object) -> bool:
        """Settle `entry` through `out`, its open temporary file; False when `out` has no descriptor
        here (the file keeps its mode and mtime from the commit, the rest from a later pass)."""
        fd = out.fileno() if isinstance(out, PartialFile) else None
        if fd is None:
            return False
        attributes = entry.attributes or FileAttributes()
        self.refused.extend(_apply_owner(fd, entry.path, attributes, self.numeric_owner, self.accounts))
        try:
            os.fchmod(fd, stat.S_IMODE(entry.mode))
            self.refused.extend(_apply_xattrs(fd, entry.path, attributes))
            if mtime_ns is not None:
                os.utime(fd, ns=(mtime_ns, mtime_ns))
        except OSError as exc:
            raise self.target.error(f"cannot set mode or mtime: {exc}", entry.path) from exc
        self.settled.add(entry.path)
        return True


def apply_over_sftp(
    target: SshRoot, entries: list[EntryMetadata], numeric_owner: bool, *, files_dated: bool = False
) -> list[str]:
    """Apply what SFTP can of the `entries`' metadata on the SSH `target`, all in one go and in their
    order (targets.ssh_attributes): the owner (by the target's own names first), mode and mtime; SFTP
    cannot set extended attributes, so each is listed as not set. With `files_dated` the files got
    their mode and mtime when put in place, so only what a new owner clears is set again."""
    from omni_recovery.targets.ssh_attributes import set_attributes  # asyncssh: SSH roots only

    accounts = None
    changes, lines = [], []
    for entry in entries:
        attributes = entry.attributes or FileAttributes()
        owner = None
        if attributes.uid is not None or attributes.gid is not None:
            accounts = accounts or target.accounts()
            owner = owner_ids(attributes, numeric_owner, accounts.users.get, accounts.groups.get)
        changes.append(_sftp_change(entry, owner, files_dated))
        lines += [
            f"{entry.path}: extended attribute {name} not set: SFTP cannot set extended attributes"
            for name, _ in attributes.xattrs
        ]
    refused = set_attributes(target, changes)
    owners = {change.relpath: change.owner for change in changes if change.owner is not None}
    return [
        f"{path}: owner {owners[path][0]}:{owners[path][1]} not set: {why}" for path, why in refused.items()
    ] + lines


def _sftp_change(entry: EntryMetadata, owner: tuple[int, int] | None, files_dated: bool) -> AttributeChange:
    from omni_recovery.targets.ssh_attributes import AttributeChange

    mode = stat.S_IMODE(entry.mode)
    if files_dated and entry.type == "file":
        # A new owner clears only the setuid and setgid bits, and moves no mtime.
        return AttributeChange(entry.path, False, owner, mode if owner and mode & SETID_BITS else None)
    mtime = None if entry.mtime is None else mtime_ns(entry.mtime) / 1e9
    return AttributeChange(entry.path, entry.type == "symlink", owner, mode, mtime)


def owner_ids(
    attributes: FileAttributes,
    numeric_owner: bool,
    user_id: NameLookup | None = None,
    group_id: NameLookup | None = None,
) -> tuple[int, int]:
    """The uid and gid to give: by name where the target knows the name (unless `numeric_owner`;
    looked up on this machine unless `user_id`/`group_id` are given), else the recorded number; -1
    (leave as it is) where neither is recorded."""
    uid = attributes.uid if attributes.uid is not None else -1
    gid = attributes.gid if attributes.gid is not None else -1
    if not numeric_owner:
        uid = _by_name(user_id or _local_id(pwd.getpwnam), attributes.user, uid)
        gid = _by_name(group_id or _local_id(grp.getgrnam), attributes.group, gid)
    return uid, gid


def _local_id(lookup: Callable[[str], Any]) -> NameLookup:
    def found(name: str) -> int | None:
        try:
            return int(lookup(name)[2])
        except KeyError:
            return None

    return found


def _by_name(lookup: NameLookup, name: str | None, number: int) -> int:
    found = None if name is None else lookup(name)
    return number if found is None else found


def _apply_owner(
    file: str | int, path: str, attributes: FileAttributes, numeric_owner: bool, accounts: LocalAccounts
) -> list[str]:
    uid, gid = owner_ids(attributes, numeric_owner, accounts.user_id, accounts.group_id)
    if (uid, gid) == (-1, -1):
        return []
    try:
        if isinstance(file, int):
            os.fchown(file, uid, gid)
        else:
            os.lchown(file, uid, gid)
    except OSError as exc:
        return [f"{path}: owner {uid}:{gid} not set: {exc.strerror}"]
    return []


def _apply_xattrs(file: str | int, path: str, attributes: FileAttributes) -> list[str]:
    refused = []
    for name, value in attributes.xattrs:
        try:  # a descriptor is the file itself: nothing to follow
            os.setxattr(file, name, value, follow_symlinks=isinstance(file, int))
        except OSError as exc:
            refused.append(f"{path}: extended attribute {name} not set: {exc.strerror}")
    return refused
