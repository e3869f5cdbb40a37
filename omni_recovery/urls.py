"""Where fsspec URLs and plain paths point: normalised, inside one another, or overlapping.

Pure functions, shared by the inventory (node and pool roots) and the planner (storage paths).
"""

from __future__ import annotations

import os
import posixpath
from typing import TypeVar

T = TypeVar("T")


def split_url(url: str) -> tuple[str, str]:
    """(protocol, path) of an fsspec URL or plain absolute path (protocol `file`, as `local://` is);
    the path normalised with posixpath."""
    protocol, sep, rest = url.partition("://")
    if not sep:
        protocol, rest = "file", url
    elif protocol == "local":
        protocol = "file"
    path = posixpath.normpath("/" + rest.lstrip("/")) if rest else "/"
    return protocol, path


def absolute_location(location: str) -> str:
    """A folder or URL that means the same from any working folder: a relative local path (plain or
    file://) made absolute; other URLs as given."""
    protocol, sep, rest = location.partition("://")
    if not sep:
        return os.path.abspath(location)
    if protocol in ("file", "local"):
        return f"{protocol}://{os.path.abspath(rest)}"
    return location


def is_under(root: str, path: str) -> bool:
    """True when `path` lies strictly inside `root` (same protocol, after normalisation)."""
    root_protocol, root_path = split_url(root)
    protocol, target = split_url(path)
    if protocol != root_protocol:
        return False
    prefix = root_path.rstrip("/") + "/"
    return target.startswith(prefix) and target != root_path


def overlapping(urls: list[tuple[str, T]]) -> list[tuple[T, T, bool]]:
    """(item, enclosing item, same path) for each URL that is another's or lies inside another's,
    after normalisation (the enclosing one is the innermost; of equal URLs, the first given)."""
    found: list[tuple[T, T, bool]] = []
    # Ordered by path components, a folder's subtree follows it, so the enclosing URLs form a stack.
    keyed = sorted(
        (((protocol, *path.strip("/").split("/")), i), item)
        for i, (url, item) in enumerate(urls)
        for protocol, path in [split_url(url)]
    )
    enclosing: list[tuple[tuple[str, ...], T]] = []
    for (parts, _), item in keyed:
        while enclosing and parts[: len(enclosing[-1][0])] != enclosing[-1][0]:
            enclosing.pop()
        if enclosing:
            found.append((item, enclosing[-1][1], parts == enclosing[-1][0]))
        enclosing.append((parts, item))
    return found


SSH_SCHEMES = ("ssh", "sftp")


def is_ssh_url(url: str) -> bool:
    """A root on another machine, reached over SSH (`ssh://` or `sftp://`)."""
    return url.partition("://")[0] in SSH_SCHEMES


def check_host_key(key_line: str) -> str | None:
    """What is wrong with a known_hosts public key line ("ssh-ed25519 AAAA…"), or None."""
    import asyncssh  # read as the SSH target will read it; imported only for inventories that name one

    try:
        asyncssh.import_public_key(key_line)
    except (asyncssh.KeyImportError, ValueError) as exc:
        return str(exc)
    return None
