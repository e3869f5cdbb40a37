"""Owners, modes and mtimes of many entries of an SSH root at once.

`set_attributes(root, changes)` sends the requests of all `changes`, in their order, on one SFTP
channel, up to WINDOW of them outstanding: the server answers them in order, so the folders given
last still get their mtimes after everything inside them, as when each waited for its answer, but
a restore of a few thousand entries takes a few round trips rather than a few per entry. A symlink
itself gets its owner and mtime (lsetstat@openssh.com), never a mode.

What can go wrong: an owner the server refuses (not root, no lsetstat) comes back as the reason for
that path; a mode or mtime refused, or the connection dropped, is a TargetError naming the path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omni_recovery.targets.ssh_session import asyncssh, reason

if TYPE_CHECKING:
    from omni_recovery.targets.ssh import SshRoot

WINDOW = 256  # requests outstanding at once
_REFUSED_OWNER = (asyncssh.SFTPPermissionDenied, asyncssh.SFTPOpUnsupported, asyncssh.SFTPFailure)


@dataclass(frozen=True)
class AttributeChange:
    """What to give one entry of the root; None leaves it as it is."""

    relpath: str
    symlink: bool
    owner: tuple[int, int] | None = None  # uid, gid; -1 keeps that one as it is
    mode: int | None = None  # permission bits (not for a symlink)
    mtime: float | None = None


@dataclass(frozen=True)
class _Request:
    doing: str  # what it does, for the message: "change owner", "change mode", "set mtime"
    relpath: str
    send: Callable[[], Coroutine[Any, Any, object]]


def set_attributes(root: SshRoot, changes: Sequence[AttributeChange]) -> dict[str, str]:
    """Apply `changes` in order; the server's reason for each path whose owner it refused."""
    fulls = [root.resolve(change.relpath) for change in changes]
    return root._call(
        _set_all(root, list(zip(changes, fulls, strict=True))), "cannot set owners, modes and mtimes"
    )


async def _set_all(root: SshRoot, todo: list[tuple[AttributeChange, str]]) -> dict[str, str]:
    sftp = root.session.sftp
    owners = await _owners(sftp, todo)
    requests = [request for change, full in todo for request in _requests(sftp, change, full, owners)]
    refused: dict[str, str] = {}
    for start in range(0, len(requests), WINDOW):
        window = requests[start : start + WINDOW]
        answers = await asyncio.gather(*(r.send() for r in window), return_exceptions=True)
        for request, answer in zip(window, answers, strict=True):
            if not isinstance(answer, BaseException):
                continue
            if request.doing == "change owner" and isinstance(answer, _REFUSED_OWNER):
                refused[request.relpath] = reason(answer)
            elif not (request.doing == "set mtime" and isinstance(answer, asyncssh.SFTPOpUnsupported)):
                raise root.error(f"cannot {request.doing}: {reason(answer)}", request.relpath) from answer
    return refused


async def _owners(
    sftp: asyncssh.SFTPClient, todo: list[tuple[AttributeChange, str]]
) -> dict[str, tuple[int, int]]:
    """The uid and gid to give each entry with an owner: where one is -1 (SFTP sets both or neither),
    the entry's current one, by an lstat (all sent at once)."""
    owners = {full: change.owner for change, full in todo if change.owner is not None}
    partial = [full for full, owner in owners.items() if -1 in owner]
    found = await asyncio.gather(*(sftp.lstat(full) for full in partial))
    for full, attrs in zip(partial, found, strict=True):
        uid, gid = owners[full]
        owners[full] = (
            attrs.uid if uid == -1 and attrs.uid is not None else uid,
            attrs.gid if gid == -1 and attrs.gid is not None else gid,
        )
    return owners


def _requests(
    sftp: asyncssh.SFTPClient, change: AttributeChange, full: str, owners: dict[str, tuple[int, int]]
) -> list[_Request]:
    requests = []
    if change.owner is not None:
        uid, gid = owners[full]
        chown = sftp.chown
        requests.append(
            _Request(
                "change owner", change.relpath, lambda: chown(full, uid=uid, gid=gid, follow_symlinks=False)
            )
        )
    if change.mode is not None and not change.symlink:
        mode = change.mode
        requests.append(_Request("change mode", change.relpath, lambda: sftp.chmod(full, mode)))
    if change.mtime is not None:
        when = (change.mtime, change.mtime)
        requests.append(
            _Request("set mtime", change.relpath, lambda: sftp.utime(full, when, follow_symlinks=False))
        )
    return requests
