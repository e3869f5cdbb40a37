"""Writing a backup set: an environment state folder becomes a signed, encrypted set of ISOs.

How it works, in order:
1. Walk the environment (envstate.model) and place every file in the ISO kind that carries
   it; seal sensitive files with the data key into a staging folder; split files above the
   chunk size into parts (a sealed file after sealing: its parts hold the ciphertext and tag of
   the whole and carry its encryption); pack files and parts into ISOs of at most
   `max_iso_size` per kind.
2. Hash every stored byte once (parts and their whole file in one pass).
3. With the whole `iso_set` known, write each ISO: manifest, backup_info, recovery_index.db,
   recovery.log, signatures, data; streamed by pycdlib to `NAME.partial`, renamed when whole.

What can go wrong: an unreadable or malformed environment raises EnvironmentStateError, and so
does a file that changes between its hashing and the end of its ISO (its inode, size, mtime or
ctime differ, as tar tells "file changed as we read it"): its ISO would not match its manifest.
An output that refuses bytes (disk full) raises RecoveryError naming the ISO. Any failure removes
every ISO this run wrote, so no partial set is left as if whole.
"""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import math
import os
import posixpath
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import fsspec
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fsspec.implementations.local import LocalFileSystem

from omni_recovery import __version__
from omni_recovery.backup.isobuild import FileWindow, IsoBuilder
from omni_recovery.backupset import keys, layout, signing
from omni_recovery.backupset.attributes import (
    FileAttributes,
    FirstNames,
    Range,
    Sparse,
    data_ranges,
    format_mtime,
    is_dense,
    source_attributes,
)
from omni_recovery.backupset.hashing import sha256_file, sha256_ranges
from omni_recovery.backupset.index_db import RecoveryIndex, write_index
from omni_recovery.backupset.manifest import (
    BackupInfo,
    Chunk,
    Encryption,
    IsoSetMember,
    Manifest,
    ManifestEntry,
)
from omni_recovery.backupset.sparse import sha256_sparse
from omni_recovery.envstate.model import EnvFile, Placement, walk_environment
from omni_recovery.envstate.topology import read_topology
from omni_recovery.errors import EnvironmentStateError, RecoveryError, some_of
from omni_recovery.yaml_text import load_yaml

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
class _Stored:
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
class _PlannedIso:
    kind: str
    sequence: int
    entries: list[_Stored] = field(default_factory=list)
    used: int = 0


@dataclass(frozen=True)
class BackupSetSummary:
    backup_set_id: str
    output: str
    isos: list[str]
    files: int
    data_bytes: int
    signer_key_id: str


def create_backup_set(
    source: Path,
    output: str,
    *,
    signing_key: Ed25519PrivateKey,
    passphrase: bytes,
    options: WriterOptions | None = None,
    progress: Progress | None = None,
) -> BackupSetSummary:
    """Back up the environment at `source` into the folder or fsspec URL `output`."""
    options = options or WriterOptions()
    options.check()
    out_fs, out_root = fsspec.core.url_to_fs(output)
    _refuse_non_empty(out_fs, out_root, output)
    report = progress or (lambda phase, n: None)
    created = (options.created_at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    environment = _read_environment(source)
    set_id = options.backup_set_id or _default_set_id(environment, created)
    topology = read_topology(source)
    kdf = keys.KdfSettings.new()
    key_id, data_key = keys.new_data_key()
    wrapped = keys.wrap_data_key(keys.derive_kek(passphrase, kdf), key_id, data_key)

    with tempfile.TemporaryDirectory(prefix="omni-backup-") as staging_dir:
        staging = Path(staging_dir)
        isos = _plan_isos(source, staging, options, data_key, key_id, wrapped, report)
        _hash_entries(isos, report)
        members = [
            IsoSetMember(layout.iso_filename(set_id, i.kind, i.sequence), i.kind, i.sequence) for i in isos
        ]
        info = BackupInfo(
            backup_set_id=set_id,
            created_at=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            omnicloud_version=str(environment.get("omnicloud_version", "")),
            source_environment=_source_summary(environment, topology),
            iso_set=members,
            encryption={
                "cipher": keys.ALGORITHM,
                "kdf": "scrypt",
                "kdf_params": {"n": kdf.n, "r": kdf.r, "p": kdf.p},
                "salt": keys.b64(kdf.salt),
                "key_id": key_id,
            },
            signing={"algorithm": "ed25519", "key_id": signing.key_id(signing_key.public_key())},
            format=layout.FORMAT_1_1,
        )
        carried_anywhere = {s.env.placement.component for iso in isos for s in iso.entries}
        with _output_folder(output, staging) as place:
            for iso, member in zip(isos, members, strict=True):
                index = _iso_index(iso, topology, carried_anywhere)
                _write_iso(iso, member.name, info, index, signing_key, staging, place, report)
    return BackupSetSummary(
        backup_set_id=set_id,
        output=output,
        isos=[m.name for m in members],
        files=sum(len(i.entries) for i in isos),
        data_bytes=sum(s.size for i in isos for s in i.entries),
        signer_key_id=info.signing["key_id"],
    )


def _read_environment(source: Path) -> dict[str, Any]:
    path = source / "environment.yaml"
    try:
        document = load_yaml(path.read_bytes())
    except (OSError, yaml.YAMLError) as exc:
        raise EnvironmentStateError(f"{path}: cannot read the environment description: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("name"), str):
        raise EnvironmentStateError(f"{path}: must be a mapping with a name")
    return document


def _default_set_id(environment: dict[str, Any], created: datetime) -> str:
    name = "".join(c if c.isalnum() else "-" for c in environment["name"].lower()).strip("-") or "omnicloud"
    return f"{name[:44]}-{created:%Y%m%dt%H%M%Sz}"


def _source_summary(environment: dict[str, Any], topology: RecoveryIndex) -> dict[str, Any]:
    def count(kind: str) -> int:
        return sum(1 for c in topology.components if c.kind == kind)

    return {
        "name": environment["name"],
        "nodes": len(topology.hardware),
        "directors": count("director"),
        "orchestrators": count("orchestrator"),
        "applications": count("application"),
    }


def _plan_isos(
    source: Path,
    staging: Path,
    options: WriterOptions,
    data_key: bytes,
    key_id: str,
    wrapped: bytes,
    report: Progress,
) -> list[_PlannedIso]:
    by_kind: dict[str, list[_PlannedIso]] = {kind: [] for kind in layout.KINDS}
    capacity = options.max_iso_size - _ISO_RESERVE

    def place(kind: str, stored: _Stored) -> None:
        footprint = -(-stored.size // _BLOCK) * _BLOCK + _PER_FILE_OVERHEAD
        planned = by_kind[kind]
        if not planned or (planned[-1].entries and planned[-1].used + footprint > capacity):
            planned.append(_PlannedIso(kind, len(planned) + 1))
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
    place(layout.SYSTEM_CORE, _Stored(key_file, layout.DATA_KEY_PATH, len(wrapped), source=key_file.abspath))
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
            by_kind[kind].append(_PlannedIso(kind, 1))
    return [iso for kind in layout.KINDS for iso in by_kind[kind]]


def _data_key_placement() -> Placement:
    return Placement(
        iso_kind=layout.SYSTEM_CORE, iso_path=layout.DATA_KEY_PATH, component="system:core", sensitive=False
    )


def _stored_entries(
    env_file: EnvFile, staging: Path, chunk_size: int, data_key: bytes, key_id: str, first_names: FirstNames
) -> Iterator[_Stored]:
    """How one environment file is stored: as itself, sealed, and/or split into parts. A sensitive file
    is sealed whole (bound to its own path) and its sealed bytes are split when they exceed the
    chunk size, every part carrying the encryption of the whole. A later name of an inode already
    met is stored as a hard link to its first; a sparse file as its data ranges, where they fit
    in one chunk (else it is stored whole, holes as zeros)."""
    path = env_file.placement.iso_path
    with _reading(env_file.abspath):
        attributes = source_attributes(env_file.abspath, env_file.lstat, env_file.type)
    first = first_names.first_name(env_file.lstat, path, env_file.placement.iso_kind)
    if env_file.type != "file" or first is not None:
        linked = dataclasses.replace(attributes, hardlink=first) if first is not None else attributes
        yield _Stored(env_file, path, 0, attributes=linked)
        return
    source, size = env_file.abspath, env_file.size
    ranges = None if env_file.placement.sensitive else _sparse_ranges(env_file)
    if ranges is not None and sum(length for _, length in ranges) <= chunk_size:
        stored_size = sum(length for _, length in ranges)
        yield _Stored(env_file, path, stored_size, source=source, attributes=attributes, ranges=ranges)
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
        yield _Stored(
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
        yield _Stored(
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
    with _reading(env_file.abspath):
        fd = os.open(env_file.abspath, os.O_RDONLY)
        try:
            ranges = data_ranges(fd, env_file.size)
        finally:
            os.close(fd)
    return None if is_dense(ranges, env_file.size) else ranges


def _hash_entries(isos: list[_PlannedIso], report: Progress) -> None:
    """Fill in every sha256 (and each chunked file's logical digest) from one read of each file."""
    parts: dict[Path, list[_Stored]] = {}
    for iso in isos:
        for stored in iso.entries:
            if stored.source == stored.env.abspath:
                stored.seen = _identity(stored.source)
            if stored.ranges is not None:
                _hash_sparse(stored)
                report("hash", stored.size)
            elif stored.window is not None:
                assert stored.source is not None
                parts.setdefault(stored.source, []).append(stored)
            elif stored.source is not None and stored.sha256 is None:
                with _reading(stored.source):
                    stored.sha256, size = sha256_file(stored.source)
                _check_size(stored, size)
                report("hash", stored.size)
    for source, pieces in parts.items():
        pieces.sort(key=lambda s: s.window or (0, 0))
        with _reading(source):
            whole, digests = sha256_ranges(source, [p.window for p in pieces if p.window])
        logical_size = sum(p.size for p in pieces)
        for index, (piece, digest) in enumerate(zip(pieces, digests, strict=True)):
            piece.sha256 = digest
            piece.chunk = Chunk(piece.env.placement.iso_path, index, len(pieces), logical_size, whole)
            report("hash", piece.size)


def _hash_sparse(stored: _Stored) -> None:
    assert stored.source is not None and stored.ranges is not None
    with _reading(stored.source):
        stored.sha256, logical_sha256 = sha256_sparse(stored.source, stored.ranges, stored.env.size)
    sparse = Sparse(tuple(stored.ranges), stored.env.size, logical_sha256)
    stored.attributes = dataclasses.replace(stored.attributes or FileAttributes(), sparse=sparse)


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Name the file whose reading failed (a read error, a file gone or cut short meanwhile)."""
    try:
        yield
    except (OSError, EOFError) as exc:
        raise EnvironmentStateError(f"{path}: cannot read it while backing it up: {exc}") from exc


def _identity(path: Path) -> tuple[int, int, int, int]:
    """What changes when a file is written to: inode, size, mtime and ctime (ns), as tar compares."""
    with _reading(path):
        st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _check_unchanged(entries: list[_Stored], name: str) -> None:
    """Refuse an ISO whose files changed after they were hashed: its manifest would not match them."""
    changed = sorted(
        {str(s.source) for s in entries if s.source and s.seen and _identity(s.source) != s.seen}
    )
    if changed:
        raise EnvironmentStateError(
            f"{some_of(changed, 5)}: changed while being backed up (after hashing, before {name} was "
            "whole), so the set would not validate. Stop what writes there or back up a snapshot, then run "
            "the backup again"
        )


def _check_size(stored: _Stored, size: int) -> None:
    if size != stored.size:
        raise EnvironmentStateError(
            f"{stored.source}: changed size while being backed up ({stored.size} then {size} bytes)"
        )


def _iso_index(iso: _PlannedIso, topology: RecoveryIndex, carried_anywhere: set[str | None]) -> RecoveryIndex:
    """The index of one ISO: the components it carries (those with no files at all go to the first ISO
    of their kind), their dependencies and, for Directors, their hardware. System-core holds everything."""
    files = [(s.path, s.env.placement.component or "") for s in iso.entries]
    if iso.kind == layout.SYSTEM_CORE:
        return RecoveryIndex(topology.components, topology.dependencies, files, topology.hardware)
    carried = {s.env.placement.component for s in iso.entries}
    components = [
        c
        for c in topology.components
        if c.component_id in carried
        or (c.iso_kind == iso.kind and iso.sequence == 1 and c.component_id not in carried_anywhere)
    ]
    ids = {c.component_id for c in components}
    nodes = {c.attributes.get("node") for c in components if c.kind == "director"}
    return RecoveryIndex(
        components=components,
        dependencies=[d for d in topology.dependencies if d.component_id in ids],
        files=files,
        hardware=[h for h in topology.hardware if h.node_id in nodes],
    )


def _write_iso(
    iso: _PlannedIso,
    name: str,
    info: BackupInfo,
    index: RecoveryIndex,
    signing_key: Ed25519PrivateKey,
    staging: Path,
    place: Callable[[str], Any],
    report: Progress,
) -> None:
    info_bytes = info.to_bytes()
    index_path = staging / f"{name}.recovery_index.db"
    write_index(index_path, index)
    index_sha, index_size = sha256_file(index_path)
    log_bytes = _recovery_log(iso, name, info)
    entries = [
        ManifestEntry(layout.BACKUP_INFO_PATH, len(info_bytes), 0o100644, None, sha256=_sha(info_bytes)),
        ManifestEntry(layout.INDEX_DB_PATH, index_size, 0o100644, None, sha256=index_sha),
        ManifestEntry(layout.RECOVERY_LOG_PATH, len(log_bytes), 0o100644, None, sha256=_sha(log_bytes)),
        *(s.manifest_entry() for s in iso.entries),
    ]
    manifest = Manifest(
        info.backup_set_id, iso.kind, iso.sequence, info.created_at, entries, info.format
    ).to_bytes()
    builder = IsoBuilder(f"{iso.kind[:12]}_{iso.sequence:03d}".upper().replace("-", "_"))
    try:
        builder.add_bytes(layout.MANIFEST_PATH, manifest)
        builder.add_bytes(layout.BACKUP_INFO_PATH, info_bytes)
        builder.add_file(layout.INDEX_DB_PATH, index_path, 0o100644)
        builder.add_bytes(layout.MANIFEST_SIG_PATH, signing_key.sign(manifest))
        builder.add_bytes(layout.BACKUP_INFO_SIG_PATH, signing_key.sign(info_bytes))
        builder.add_bytes(layout.SIGNER_PUB_PATH, signing.public_pem(signing_key.public_key()))
        builder.add_bytes(layout.RECOVERY_LOG_PATH, log_bytes)
        for stored in iso.entries:
            _add_stored(builder, stored)
        with place(name) as out:
            builder.write(out, lambda n: report("write", n))
            _check_unchanged(iso.entries, name)
    finally:
        builder.close()


def _add_stored(builder: IsoBuilder, stored: _Stored) -> None:
    env, attributes = stored.env, stored.attributes
    if attributes is not None and attributes.hardlink is not None:
        return  # a later name of an inode: in the manifest only, its bytes are its first name's
    _add_content(builder, stored)
    if attributes is not None and attributes.uid is not None and attributes.gid is not None:
        builder.set_owner(
            stored.path, attributes.uid, attributes.gid, stored.links if env.type == "file" else None
        )


def _add_content(builder: IsoBuilder, stored: _Stored) -> None:
    env = stored.env
    if env.type == "dir":
        builder.add_directory(stored.path, env.mode)
    elif env.type == "symlink":
        assert env.target is not None
        builder.add_symlink(stored.path, env.target)
    elif stored.window is not None or stored.ranges is not None:
        assert stored.source is not None
        ranges = stored.ranges if stored.ranges is not None else [stored.window or (0, 0)]
        builder.add_stream(stored.path, FileWindow(stored.source, ranges), stored.size, env.mode)
    else:
        assert stored.source is not None
        builder.add_file(stored.path, stored.source, env.mode)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _recovery_log(iso: _PlannedIso, name: str, info: BackupInfo) -> bytes:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    who = f"{getpass.getuser()}@{socket.gethostname()}"
    lines = [
        f"{info.created_at} backup {info.backup_set_id} started by {who}",
        f"{now} writer omni-recovery {__version__}",
        f"{now} iso {name}: kind {iso.kind}, sequence {iso.sequence} of set of {len(info.iso_set)} ISOs",
        f"{now} iso {name}: {len(iso.entries)} entries, {sum(s.size for s in iso.entries)} data bytes",
        f"{now} iso {name}: manifest and backup_info signed by {info.signing['key_id']}",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _refuse_non_empty(fs: Any, root: str, output: str) -> None:
    if not fs.exists(root):
        return
    present = sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(root, detail=False))
    if present:
        raise RecoveryError(
            f"{output} already holds {some_of(present)}; a set folder holds one backup set, so refusing to "
            "overwrite a backup or mix two sets"
        )


@contextmanager
def _output_folder(output: str, staging: Path) -> Iterator[Callable[[str], Any]]:
    """Yields `place(name)`: a context manager giving a binary file that appears in `output` as `name`
    only once closed without error. If anything fails, every ISO this run wrote is removed again.

    pycdlib seeks while writing an image, so a remote URL gets the image written locally first."""
    fs, root = fsspec.core.url_to_fs(output)
    fs.makedirs(root, exist_ok=True)
    _refuse_non_empty(fs, root, output)
    local = isinstance(fs, LocalFileSystem)
    written: list[str] = []

    @contextmanager
    def place(name: str) -> Iterator[BinaryIO]:
        final = posixpath.join(root, name)
        partial = final + ".partial"
        local_path = Path(partial) if local else staging / name
        try:
            with local_path.open("wb") as out:
                yield out
            if not local:
                fs.put_file(str(local_path), partial)
                local_path.unlink()
            fs.mv(partial, final)
        except BaseException as exc:
            local_path.unlink(missing_ok=True)
            if fs.exists(partial):
                fs.rm(partial)
            if isinstance(exc, OSError):
                raise RecoveryError(
                    f"writing {name} into {output} failed: {exc}; no ISO of this set is left there"
                ) from exc
            raise
        written.append(final)

    try:
        yield place
    except BaseException:
        for final in written:
            fs.rm(final)
        raise
