"""The environment state folder: what each file of a running OmniCloud environment is, and where it goes.

An environment state folder is the on-disk shape of one OmniCloud environment (see
docs/environment-state.md). Backups are taken from it; restores write the same shape onto each
target root. This module knows the shape, and nothing else:

- `place()` says, for a path relative to the environment root, which ISO kind carries it, under
  which `data/...` path, for which component, and whether it is sensitive (sealed in backups).
- `env_path()` is the inverse, used by restores to turn an ISO path back into an environment path.
- `walk_environment()` lists every file of a folder in a fixed order, without following symlinks,
  refusing anything the backup format could not carry.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from omni_recovery.backupset.layout import (
    APPLICATION_DEFINITION,
    DATA_KEY_PATH,
    DIRECTOR_STATE,
    NETWORK_CONFIGURATION,
    ORCHESTRATOR_STATE,
    SYSTEM_CORE,
    VOLUME_DATA,
    check_relative_path,
    is_within,
)
from omni_recovery.errors import EnvironmentStateError, UnsafePathError

# fnmatch patterns over environment-relative POSIX paths, matched segment by segment (a `*`
# never crosses a `/`). Files that match are sealed with the data key in a backup.
SENSITIVE_PATTERNS: tuple[str, ...] = (
    "keys/*.key",
    "applications/*/secrets.json",
    "orchestrators/*/db/users.jsonl",
)

SYSTEM_COMPONENT = "system:core"
NETWORK_COMPONENT = "network:config"
# Suffix of a sealed key file under data/keys/ in a backup.
SEALED_KEY_SUFFIX = ".enc"

# Every name allowed at the top of an environment folder.
TOP_LEVEL = frozenset(
    {
        "environment.yaml",
        "recovery",
        "keys",
        "nodes",
        "directors",
        "orchestrators",
        "applications",
        "services",
        "volumes",
        "network",
    }
)

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"


@dataclass(frozen=True)
class Placement:
    """Where one environment file goes in a backup set."""

    iso_kind: str
    iso_path: str
    component: str | None
    sensitive: bool


@dataclass(frozen=True)
class EnvFile:
    """One entry of an environment folder, as `walk_environment` reports it.

    `type` is "file", "dir" (only folders inside a volume's files/ tree) or "symlink" (only
    inside a volume's files/ tree, `target` set). `mode` is the full st_mode (type bits
    included); `size` is 0 for folders and symlinks.
    """

    relpath: str
    abspath: Path
    type: str
    size: int
    mode: int
    mtime: float
    target: str | None
    placement: Placement
    lstat: os.stat_result | None = None  # the lstat it was read from: owner, inode, links, mtime in ns


def is_sensitive(relpath: str) -> bool:
    """True when the environment path matches one of SENSITIVE_PATTERNS."""
    parts = relpath.split("/")
    for pattern in SENSITIVE_PATTERNS:
        pattern_parts = pattern.split("/")
        if len(pattern_parts) == len(parts) and all(
            fnmatch.fnmatchcase(part, pat) for part, pat in zip(parts, pattern_parts, strict=True)
        ):
            return True
    return False


def _segments(path: str, what: str) -> list[str]:
    try:
        check_relative_path(path)
    except UnsafePathError as exc:
        raise EnvironmentStateError(f"{what} {path!r}: {exc.reason}") from exc
    try:
        path.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EnvironmentStateError(f"{what} {path!r}: name is not valid UTF-8") from exc
    return path.split("/")


def place(relpath: str) -> Placement:
    """Where the environment file `relpath` (relative POSIX path) goes in a backup set.

    Raises EnvironmentStateError naming the path when it is not part of an environment folder.
    """
    parts = _segments(relpath, "environment path")
    head, count = parts[0], len(parts)
    rest = "/".join(parts[1:])
    sensitive = is_sensitive(relpath)
    if relpath == "environment.yaml":
        return Placement(SYSTEM_CORE, "data/system/environment.yaml", SYSTEM_COMPONENT, False)
    if head == "recovery" and count >= 2:
        return Placement(SYSTEM_CORE, f"data/recovery/{rest}", SYSTEM_COMPONENT, sensitive)
    if head == "nodes" and count >= 2:
        return Placement(SYSTEM_CORE, f"data/system/nodes/{rest}", SYSTEM_COMPONENT, sensitive)
    if head == "keys" and count == 2:
        name = parts[1]
        if name.endswith(".key"):
            return Placement(SYSTEM_CORE, f"data/keys/{name}{SEALED_KEY_SUFFIX}", SYSTEM_COMPONENT, True)
        if name.endswith(".crt"):
            return Placement(SYSTEM_CORE, f"data/keys/{name}", SYSTEM_COMPONENT, sensitive)
        raise EnvironmentStateError(f"{relpath}: keys/ holds only *.crt certificates and *.key private keys")
    if head == "directors" and count >= 3:
        return Placement(DIRECTOR_STATE, f"data/{relpath}", f"director:{parts[1]}", sensitive)
    if head == "orchestrators" and count >= 3:
        return Placement(ORCHESTRATOR_STATE, f"data/{relpath}", f"orchestrator:{parts[1]}", sensitive)
    if head == "applications" and count >= 3:
        return Placement(APPLICATION_DEFINITION, f"data/{relpath}", f"application:{parts[1]}", sensitive)
    if head == "services" and count >= 3:
        return Placement(APPLICATION_DEFINITION, f"data/{relpath}", f"service:{parts[1]}", sensitive)
    if head == "volumes" and count >= 4:
        return Placement(VOLUME_DATA, f"data/{relpath}", f"volume:{parts[1]}/{parts[2]}", sensitive)
    if head == "network" and count >= 2:
        return Placement(NETWORK_CONFIGURATION, f"data/{relpath}", NETWORK_COMPONENT, sensitive)
    raise EnvironmentStateError(f"{relpath}: not part of an OmniCloud environment state folder")


def component_of(relpath: str) -> str | None:
    """The component an environment path belongs to: `place`'s, or for another writer's extra files
    below data/ (see env_path) the network's under network/ and the system's elsewhere."""
    try:
        return place(relpath).component
    except EnvironmentStateError:
        return NETWORK_COMPONENT if relpath.split("/")[0] == "network" else SYSTEM_COMPONENT


def env_path(iso_path: str) -> str:
    """The environment path of what a set stores at `iso_path`: the inverse of `place` for what this
    project's writer stores, and for other `data/` paths (another writer's files, such as
    `data/keys/old-ca.enc` or `data/system/ntp.yaml`, or folder entries such as `data/network`) the
    path below `data/`, with `data/system/` kept as `system/`.

    Raises EnvironmentStateError naming the path when no environment file is stored there: paths
    outside `data/`, data/keys/data-key.json (it belongs to the backup, not the environment), and
    paths that would stand for one of ours stored elsewhere (`data/environment.yaml`, an unsealed
    `data/keys/ca.key`).
    """
    parts = _segments(iso_path, "backup path")
    if parts[0] != "data" or len(parts) < 2 or iso_path == DATA_KEY_PATH:
        raise EnvironmentStateError(f"{iso_path}: not a data/ path of an environment file")
    rest = parts[1:]
    if rest == ["system", "environment.yaml"]:
        return "environment.yaml"
    if rest[0] == "system" and len(rest) >= 3 and rest[1] == "nodes":
        return "/".join(["nodes", *rest[2:]])
    if rest[0] == "keys" and len(rest) == 2 and rest[1].endswith(".key" + SEALED_KEY_SUFFIX):
        return "/".join(rest)[: -len(SEALED_KEY_SUFFIX)]
    candidate = "/".join(rest)
    try:
        stored = place(candidate).iso_path
    except EnvironmentStateError:
        return candidate  # not a path this project's writer makes: another writer's file or folder
    if stored != iso_path:  # it would shadow one of ours
        raise EnvironmentStateError(
            f"{iso_path}: not a data/ path of an environment file (that file is stored at {stored})"
        )
    return candidate


def volume_files_root(relpath: str) -> str | None:
    """`volumes/{app}/{vol}/files` when `relpath` lies strictly inside a volume's files/ tree."""
    parts = relpath.split("/")
    if len(parts) >= 5 and parts[0] == "volumes" and parts[3] == "files":
        return "/".join(parts[:4])
    return None


def walk_environment(root: Path) -> Iterator[EnvFile]:
    """Every entry of the environment folder at `root`, in sorted order, streaming.

    Order: by relative path, folders compared as "name/" so a folder comes right before its
    content (this is plain sorted order of the relative paths of files). Symlinks are never
    followed. "dir" entries are emitted only for folders inside a volume's files/ tree (so empty
    folders survive a backup); files and symlinks everywhere. Raises EnvironmentStateError
    naming the path for anything the backup format cannot carry: a name outside the shape, a
    symlink outside a volume's files/ tree or whose target leaves it, a device, FIFO or socket.
    """
    root = Path(root)
    if not root.is_dir():
        raise EnvironmentStateError(f"{root}: not an environment folder (no such directory)")
    yield from _walk(root, str(root), "")


def _walk(root: Path, folder: str, rel: str) -> Iterator[EnvFile]:
    try:
        with os.scandir(folder) as listing:
            entries = [(entry, entry.is_dir(follow_symlinks=False)) for entry in listing]
    except OSError as exc:
        raise EnvironmentStateError(f"{rel or root}: cannot be listed: {exc}") from exc
    entries.sort(key=lambda item: item[0].name + "/" if item[1] else item[0].name)
    for entry, _is_dir in entries:
        relpath = f"{rel}/{entry.name}" if rel else entry.name
        if not rel and entry.name not in TOP_LEVEL:
            raise EnvironmentStateError(f"{relpath}: not part of an OmniCloud environment state folder")
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            raise EnvironmentStateError(f"{relpath}: cannot be read: {exc}") from exc
        if stat.S_ISDIR(st.st_mode):
            if volume_files_root(relpath) is not None:
                yield EnvFile(
                    relpath, Path(entry.path), DIR, 0, st.st_mode, st.st_mtime, None, place(relpath), st
                )
            else:
                _segments(relpath, "environment path")
            yield from _walk(root, entry.path, relpath)
        elif stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(entry.path)
            except OSError as exc:
                raise EnvironmentStateError(f"{relpath}: symlink cannot be read: {exc}") from exc
            placement = place(relpath)
            check_symlink(root, relpath, target)
            yield EnvFile(
                relpath, Path(entry.path), SYMLINK, 0, st.st_mode, st.st_mtime, target, placement, st
            )
        elif stat.S_ISREG(st.st_mode):
            yield EnvFile(
                relpath, Path(entry.path), FILE, st.st_size, st.st_mode, st.st_mtime, None, place(relpath), st
            )
        else:
            raise EnvironmentStateError(f"{relpath}: not a regular file, folder or symlink")


def check_symlink(root: Path, relpath: str, target: str) -> None:
    """Refuse a symlink at `relpath` unless its target, resolved from its folder, stays in its files/ tree.

    The check is made on the text of the target (as a backup reader makes it) and on the real
    folder under `root` (so a target that goes through another symlink cannot bend it outside).
    """
    files_root = volume_files_root(relpath)
    if files_root is None:
        raise EnvironmentStateError(f"{relpath}: symlinks are allowed only inside a volume's files/ tree")
    if not target or target.startswith("/") or "\\" in target or "\x00" in target:
        raise EnvironmentStateError(f"{relpath}: symlink target {target!r} must be a relative POSIX path")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relpath), target))
    if resolved.startswith("../") or resolved == ".." or not is_within(files_root, resolved):
        raise EnvironmentStateError(f"{relpath}: symlink target {target!r} leaves {files_root}/")
    real_root = os.path.realpath(Path(root) / files_root)
    real = os.path.realpath(os.path.join(Path(root) / posixpath.dirname(relpath), target))
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise EnvironmentStateError(
            f"{relpath}: symlink target {target!r} leaves {files_root}/ through another symlink"
        )
