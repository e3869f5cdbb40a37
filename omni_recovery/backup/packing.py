"""What each ISO of a backup set holds: every environment file placed, sealed, split or linked.

`plan_isos()` walks the environment (envstate.model) and places every file in the ISO kind that
carries it, with the wrapped data key in system-core. A sensitive file is sealed with the data
key into the staging folder (bound to its own path); a file above the chunk size is split into
parts (a sealed file after sealing: its parts hold the ciphertext and tag of the whole and carry
its encryption); a later name of an inode already met is stored as a hard link to its first; a
sparse file is stored as its data ranges where they fit in one chunk. Files and parts are packed
into ISOs of at most `max_iso_size` per kind. A file that cannot be read raises
EnvironmentStateError naming it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from omni_recovery.backupset import keys, layout
from omni_recovery.backupset.attributes import (
    FileAttributes,
    FirstNames,
    Range,
    data_ranges,
    format_mtime,
    is_dense,
    source_attributes,
)
from omni_recovery.backupset.manifest import Chunk, Encryption, ManifestEntry
from omni_recovery.envstate.model import EnvFile, Placement, walk_environment
from omni_recovery.errors import EnvironmentStateError, RecoveryError

__all__ = ["GiB", "PlannedIso", "Progress", "Stored", "WriterOptions", "plan_isos", "reading"]

GiB = 1024**3
# Room kept in every ISO for volume descriptors, path tables and the fixed metadata files, and what each
# entry adds besides its padded data: directory records (ISO 9660 and Joliet), manifest and index rows.
_ISO_RESERVE = 1024 * 1024
_PER_FILE_OVERHEAD = 1024
_BLOCK = 2048

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class WriterOptions:
    backup_set_id: str | None = None
    max_iso_size: int = 4 * GiB
    chunk_size: int = 1 * GiB
    created_at: datetime | None = None

    def check(self) -> None:
        if not 1 <= self.chunk_size <= layout.MAX_CHUNK_SIZE:
            raise RecoveryError(f"chunk size must be between 1 and {layout.MAX_CHUNK_SIZE} bytes")
        if self.max_iso_size < self.chunk_size + _ISO_RESERVE + _PER_FILE_OVERHEAD:
            raise RecoveryError(
                f"maximum ISO size {self.max_iso_size} must exceed the chunk size {self.chunk_size} "
                f"by at least {_ISO_RESERVE + _PER_FILE_OVERHEAD} bytes"
            )
        if self.backup_set_id is not None and not layout.SET_ID_PATTERN.fullmatch(self.backup_set_id):
            raise RecoveryError(
                f"backup set id {self.backup_set_id!r} does not match [a-z0-9][a-z0-9-]{{0,62}}"
            )


@dataclass
class Stored:
    """One entry of one ISO: where its bytes come from and what the manifest says of it."""

    env: EnvFile
    path: str
    size: int
    source: Path | None = None
    window: tuple[int, int] | None = None
    sha256: str | None = None
    chunk: Chunk | None = None
    encryption: Encryption | None = None
    # The environment file as it was when hashed (for files stored as they are, not sealed copies).
    seen: tuple[int, int, int, int] | None = None
    attributes: FileAttributes | None = None
    ranges: list[Range] | None = None  # a sparse file's data ranges, the only bytes stored
    links: int = 1  # names of its inode in the set

    def manifest_entry(self) -> ManifestEntry:
        st = self.env.lstat
        mtime = format_mtime(st.st_mtime_ns if st else int(self.env.mtime) * 1_000_000_000)
        return ManifestEntry(
            path=self.path,
            size=self.size,
            mode=self.env.mode,
            component=self.env.placement.component,
            type=self.env.type,
            sha256=self.sha256,
            target=self.env.target,
            mtime=mtime,
            chunk=self.chunk,
            encryption=self.encryption,
            attributes=self.attributes,
        )


@dataclass
class PlannedIso:
    kind: str
    sequence: int
    entries: list[Stored] = field(default_factory=list)
    used: int = 0


def plan_isos(
    source: Path,
    staging: Path,
    options: WriterOptions,
    data_key: bytes,
    key_id: str,
    wrapped: bytes,
    report: Progress,
) -> list[PlannedIso]:
    by_kind: dict[str, list[PlannedIso]] = {kind: [] for kind in layout.KINDS}
    capacity = options.max_iso_size - _ISO_RESERVE

    def place(kind: str, stored: Stored) -> None:
        footprint = -(-stored.size // _BLOCK) * _BLOCK + _PER_FILE_OVERHEAD
        planned = by_kind[kind]
        if not planned or (planned[-1].entries and planned[-1].used + footprint > capacity):
            planned.append(PlannedIso(kind, len(planned) + 1))
        planned[-1].entries.append(stored)
        planned[-1].used += footprint

    key_file = EnvFile(
        relpath="keys/data-key.json",
        abspath=staging / "data-key.json",
        type="file",
        size=len(wrapped),
        mode=0o100600,
        mtime=datetime.now(UTC).timestamp(),
        target=None,
        placement=_data_key_placement(),
    )
    key_file.abspath.write_bytes(wrapped)
    place(layout.SYSTEM_CORE, Stored(key_file, layout.DATA_KEY_PATH, len(wrapped), source=key_file.abspath))
    first_names = FirstNames()
    for env_file in walk_environment(source):
        for stored in _stored_entries(env_file, staging, options.chunk_size, data_key, key_id, first_names):
            place(env_file.placement.iso_kind, stored)
        report("scan", 1)
    for planned in by_kind.values():
        for iso in planned:
            for stored in iso.entries:
                stored.links = first_names.names(stored.env.lstat, stored.env.placement.iso_kind)
    for kind in layout.KINDS:
        if not by_kind[kind] and layout.KIND_COUNTS[kind][0] > 0:
            by_kind[kind].append(PlannedIso(kind, 1))
    return [iso for kind in layout.KINDS for iso in by_kind[kind]]


def _data_key_placement() -> Placement:
    return Placement(
        iso_kind=layout.SYSTEM_CORE, iso_path=layout.DATA_KEY_PATH, component="system:core", sensitive=False
    )


def _stored_entries(
    env_file: EnvFile, staging: Path, chunk_size: int, data_key: bytes, key_id: str, first_names: FirstNames
) -> Iterator[Stored]:
    """How one environment file is stored: as itself, sealed, and/or split into parts. A sensitive file
    is sealed whole (bound to its own path) and its sealed bytes are split when they exceed the
    chunk size, every part carrying the encryption of the whole. A later name of an inode already
    met is stored as a hard link to its first; a sparse file as its data ranges, where they fit
    in one chunk (else it is stored whole, holes as zeros)."""
    path = env_file.placement.iso_path
    with reading(env_file.abspath):
        attributes = source_attributes(env_file.abspath, env_file.lstat, env_file.type)
    first = first_names.first_name(env_file.lstat, path, env_file.placement.iso_kind)
    if env_file.type != "file" or first is not None:
        linked = dataclasses.replace(attributes, hardlink=first) if first is not None else attributes
        yield Stored(env_file, path, 0, attributes=linked)
        return
    source, size = env_file.abspath, env_file.size
    ranges = None if env_file.placement.sensitive else _sparse_ranges(env_file)
    if ranges is not None and sum(length for _, length in ranges) <= chunk_size:
        stored_size = sum(length for _, length in ranges)
        yield Stored(env_file, path, stored_size, source=source, attributes=attributes, ranges=ranges)
        return
    encryption: Encryption | None = None
    sealed_sha256: str | None = None
    if env_file.placement.sensitive:
        source = staging / f"sealed-{os.urandom(8).hex()}"
        with env_file.abspath.open("rb") as src, source.open("wb") as dst:
            sealed = keys.seal_file(data_key, key_id, path, src, dst)
        encryption = Encryption(**sealed.manifest_fields())
        size, sealed_sha256 = sealed.stored_size, sealed.stored_sha256
    if size <= chunk_size:
        yield Stored(
            env_file,
            path,
            size,
            source=source,
            sha256=sealed_sha256,
            encryption=encryption,
            attributes=attributes,
        )
        return
    count = math.ceil(size / chunk_size)
    for index in range(count):
        offset = index * chunk_size
        length = min(chunk_size, size - offset)
        yield Stored(
            env_file,
            layout.chunk_part_path(path, index),
            length,
            source=source,
            window=(offset, length),
            encryption=encryption,
            attributes=attributes,
        )


def _sparse_ranges(env_file: EnvFile) -> list[Range] | None:
    """The data ranges of a file with holes; None for a file without."""
    with reading(env_file.abspath):
        fd = os.open(env_file.abspath, os.O_RDONLY)
        try:
            ranges = data_ranges(fd, env_file.size)
        finally:
            os.close(fd)
    return None if is_dense(ranges, env_file.size) else ranges


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Name the file whose reading failed (a read error, a file gone or cut short meanwhile)."""
    try:
        yield
    except (OSError, EOFError) as exc:
        raise EnvironmentStateError(f"{path}: cannot read it while backing it up: {exc}") from exc
