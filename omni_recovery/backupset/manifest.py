"""metadata/manifest.json and metadata/backup_info.yaml: models, parsing and writing.

Parsing treats both documents as untrusted: every field is type-checked, every path goes
through the layout rules, duplicated paths, entries under a symlink and symlinks that leave
their volume's `files/` tree are refused, and the first problem raises a BackupSetError
naming the ISO and the path. Unknown fields are ignored, so newer writers stay readable.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import yaml

from omni_recovery.backupset import layout
from omni_recovery.backupset.attributes import FileAttributes, parse_attributes, sparse_problem
from omni_recovery.errors import BackupSetError
from omni_recovery.yaml_text import load_yaml

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# Modes assumed when a writer leaves `mode` out (the format shows it but a reader should not insist).
DEFAULT_MODES = {"file": 0o100644, "dir": 0o40755, "symlink": 0o120777}
_VOLUME_FILES = re.compile(r"(data/volumes/[^/]+/[^/]+/files)/")
ENTRY_TYPES = ("file", "dir", "symlink")


@dataclass(frozen=True, slots=True)
class Chunk:
    chunk_of: str
    chunk_index: int
    chunk_count: int
    logical_size: int
    logical_sha256: str


def join_chunks(contents: Sequence[bytes], logical_size: int, logical_sha256: str) -> bytes:
    """A chunked file's parts, in order, joined; ValueError saying how the whole differs from its
    logical_size/logical_sha256 (callers name the ISO and path)."""
    data = b"".join(contents)
    digest = hashlib.sha256(data).hexdigest()
    if (len(data), digest) != (logical_size, logical_sha256):
        raise ValueError(
            f"its {len(contents)} parts joined hash to {digest} ({len(data)} bytes), "
            f"logical_sha256 is {logical_sha256} ({logical_size} bytes)"
        )
    return data


@dataclass(frozen=True, slots=True)
class Encryption:
    alg: str
    key_id: str
    nonce: str
    plaintext_sha256: str
    plaintext_size: int


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    path: str
    size: int
    mode: int
    component: str | None
    type: str = "file"
    sha256: str | None = None
    target: str | None = None
    mtime: str | None = None
    chunk: Chunk | None = None
    encryption: Encryption | None = None
    attributes: FileAttributes | None = None

    @property
    def hardlink(self) -> str | None:
        """The path of the first name of this entry's inode, for a second or later name."""
        return self.attributes.hardlink if self.attributes else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "size": self.size}
        if self.sha256 is not None:
            out["sha256"] = self.sha256
        out["mode"] = self.mode
        out["component"] = self.component
        if self.type != "file":
            out["type"] = self.type
        if self.target is not None:
            out["target"] = self.target
        if self.mtime is not None:
            out["mtime"] = self.mtime
        if self.chunk is not None:
            out.update(
                chunk_of=self.chunk.chunk_of,
                chunk_index=self.chunk.chunk_index,
                chunk_count=self.chunk.chunk_count,
                logical_size=self.chunk.logical_size,
                logical_sha256=self.chunk.logical_sha256,
            )
        if self.encryption is not None:
            e = self.encryption
            out["encryption"] = {
                "alg": e.alg,
                "key_id": e.key_id,
                "nonce": e.nonce,
                "plaintext_sha256": e.plaintext_sha256,
                "plaintext_size": e.plaintext_size,
            }
        if self.attributes is not None:
            out.update(self.attributes.to_json())
        return out


@dataclass(frozen=True)
class Manifest:
    backup_set_id: str
    kind: str
    sequence: int
    created_at: str
    files: list[ManifestEntry] = field(default_factory=list)
    format: str = layout.FORMAT

    def to_bytes(self) -> bytes:
        document = {
            "format": self.format,
            "backup_set_id": self.backup_set_id,
            "kind": self.kind,
            "sequence": self.sequence,
            "created_at": self.created_at,
            "files": [entry.to_json() for entry in self.files],
        }
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class IsoSetMember:
    name: str
    kind: str
    sequence: int


@dataclass(frozen=True)
class BackupInfo:
    backup_set_id: str
    created_at: str
    omnicloud_version: str
    source_environment: dict[str, Any]
    iso_set: list[IsoSetMember]
    encryption: dict[str, Any]
    signing: dict[str, Any]
    format: str = layout.FORMAT

    def to_bytes(self) -> bytes:
        document = {
            "format": self.format,
            "backup_set_id": self.backup_set_id,
            "created_at": self.created_at,
            "omnicloud_version": self.omnicloud_version,
            "source_environment": self.source_environment,
            "iso_set": [{"name": m.name, "kind": m.kind, "sequence": m.sequence} for m in self.iso_set],
            "encryption": self.encryption,
            "signing": self.signing,
        }
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode("utf-8")


class _Fields:
    """Typed access to one untrusted JSON/YAML object, raising errors that name the ISO and path."""

    def __init__(self, obj: Any, *, iso: str, path: str, what: str) -> None:
        if not isinstance(obj, dict):
            raise BackupSetError(f"{what} must be an object", iso=iso, path=path)
        self.obj, self.iso, self.path, self.what = obj, iso, path, what

    def fail(self, message: str) -> BackupSetError:
        return BackupSetError(f"{self.what}: {message}", iso=self.iso, path=self.path)

    def text(self, key: str, *, optional: bool = False) -> Any:
        value = self.obj.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(f"{key} must be non-empty text, found {value!r}")
        return value

    def integer(self, key: str, *, minimum: int = 0, optional: bool = False) -> Any:
        value = self.obj.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(f"{key} must be an integer >= {minimum}, found {value!r}")
        return value

    def sha256(self, key: str) -> str:
        value = self.text(key)
        if not _SHA256.fullmatch(value):
            raise self.fail(f"{key} must be 64 hex digits, found {value!r}")
        return str(value).lower()

    def timestamp(self, key: str, *, optional: bool = False) -> Any:
        value = self.text(key, optional=optional)
        if value is not None:
            try:
                layout.parse_time(value)
            except ValueError as exc:
                raise self.fail(f"{key} is not an RFC 3339 time: {value!r}") from exc
        return value


def parse_manifest(data: bytes, *, iso: str) -> Manifest:
    """Parse and check manifest.json of one ISO."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise not_json(exc, iso) from exc
    empty = manifest_without_entries(document, iso)
    entries = [parse_entry(raw, iso) for raw in document["files"]]
    _check_entry_set(entries, iso)
    return replace(empty, files=entries)


def not_json(exc: Exception, iso: str) -> BackupSetError:
    return BackupSetError(f"manifest is not valid JSON: {exc}", iso=iso, path=layout.MANIFEST_PATH)


def manifest_without_entries(document: Any, iso: str) -> Manifest:
    """The manifest's own fields checked (`files` only for being a list), without its entries."""
    top = _Fields(document, iso=iso, path=layout.MANIFEST_PATH, what="manifest")
    if document.get("format") not in layout.FORMATS:
        raise top.fail(f"format must be one of {', '.join(layout.FORMATS)}, found {document.get('format')!r}")
    set_id = top.text("backup_set_id")
    if not layout.SET_ID_PATTERN.fullmatch(set_id):
        raise top.fail(f"backup_set_id {set_id!r} is not a valid id")
    kind = top.text("kind")
    if kind not in layout.KINDS:
        raise top.fail(f"unknown kind {kind!r}")
    if not isinstance(document.get("files"), list):
        raise top.fail("files must be a list")
    sequence, created = top.integer("sequence", minimum=1), top.timestamp("created_at")
    return Manifest(set_id, kind, sequence, created, [], document["format"])


def parse_entry(raw: Any, iso: str) -> ManifestEntry:
    """One entry of `files`, checked on its own (the checks across entries are parse_manifest's)."""
    where = _Fields(raw, iso=iso, path=layout.MANIFEST_PATH, what="manifest entry")
    path = layout.check_relative_path(where.text("path"), iso=iso)
    f = _Fields(raw, iso=iso, path=path, what="manifest entry")
    if path in layout.UNLISTED_PATHS or path.startswith(layout.SIGNATURE_DIR + "/"):
        raise f.fail("lists a file that the manifest must not list")
    kind = raw.get("type", "file")
    if kind not in ENTRY_TYPES:
        raise f.fail(f"type must be one of {', '.join(ENTRY_TYPES)}, found {kind!r}")
    size = f.integer("size")
    mode = f.integer("mode") if raw.get("mode") is not None else DEFAULT_MODES[kind]
    component = f.text("component", optional=True)
    attributes = parse_attributes(raw, f.fail, iso)
    mtime = f.timestamp("mtime", optional=True)
    if kind == "file" and (attributes is None or attributes.hardlink is None):
        chunk, encryption = _chunk(raw, f, path), _encryption(raw, iso, path)
        problem = sparse_problem(attributes, size, split=chunk is not None, sealed=encryption is not None)
        if problem:
            raise f.fail(problem)
        sha256 = f.sha256("sha256")
        return ManifestEntry(
            path, size, mode, component, "file", sha256, None, mtime, chunk, encryption, attributes
        )
    if size != 0 or raw.get("sha256") is not None:
        raise f.fail(f"a {'hard link' if kind == 'file' else kind} entry has size 0 and no sha256")
    if attributes is not None and (attributes.sparse or (attributes.hardlink and kind != "file")):
        raise f.fail("only a file's first name may be sparse, and only a file is a hard link")
    if attributes is not None and attributes.hardlink == path:
        raise f.fail("a hard link names the first name of its inode, not itself")
    target = f.text("target") if kind == "symlink" else None
    return ManifestEntry(path, 0, mode, component, kind, None, target, mtime, attributes=attributes)


def _chunk(raw: dict[str, Any], f: _Fields, path: str) -> Chunk | None:
    if "chunk_of" not in raw:
        return None
    chunk = Chunk(
        chunk_of=layout.check_relative_path(f.text("chunk_of"), iso=f.iso),
        chunk_index=f.integer("chunk_index"),
        chunk_count=f.integer("chunk_count", minimum=1),
        logical_size=f.integer("logical_size"),
        logical_sha256=f.sha256("logical_sha256"),
    )
    if chunk.chunk_index >= chunk.chunk_count:
        raise f.fail(f"chunk_index {chunk.chunk_index} is not below chunk_count {chunk.chunk_count}")
    if path != layout.chunk_part_path(chunk.chunk_of, chunk.chunk_index):
        raise f.fail(
            f"a part of {chunk.chunk_of} must be named "
            f"{layout.chunk_part_path(chunk.chunk_of, chunk.chunk_index)}"
        )
    return chunk


def _encryption(raw: dict[str, Any], iso: str, path: str) -> Encryption | None:
    if raw.get("encryption") is None:
        return None
    f = _Fields(raw["encryption"], iso=iso, path=path, what="encryption")
    alg = f.text("alg")
    if alg != "AES-256-GCM":
        raise f.fail(f"unsupported algorithm {alg!r}")
    # A key id is hex in either case (as sha256 is): held lower-case, so comparisons are plain.
    key_id = f.text("key_id").lower()
    return Encryption(alg, key_id, f.text("nonce"), f.sha256("plaintext_sha256"), f.integer("plaintext_size"))


def _check_entry_set(entries: list[ManifestEntry], iso: str) -> None:
    seen: set[str] = set()
    symlinks: set[str] = set()
    for entry in entries:
        if entry.path in seen:
            raise BackupSetError("path is listed twice in the manifest", iso=iso, path=entry.path)
        seen.add(entry.path)
        if entry.type == "symlink":
            symlinks.add(entry.path)
            _check_symlink(entry, iso)
    if symlinks:
        for entry in entries:
            parent = posixpath.dirname(entry.path)
            while parent:
                if parent in symlinks:
                    raise BackupSetError(f"entry lies under the symlink {parent}", iso=iso, path=entry.path)
                parent = posixpath.dirname(parent)
        check_symlink_chains({e.path: e.target or "" for e in entries if e.type == "symlink"}, iso=iso)


def check_symlink_chains(links: Mapping[str, str], *, iso: str | None) -> None:
    """Refuse a symlink (stored path → target) that leads out of its volume's files/ tree once the
    symlinks it passes through are followed too (each target alone is checked by parse_manifest)."""
    for path in sorted(links):
        match = _VOLUME_FILES.match(path)
        resolved = layout.resolve_symlinks(path, links)
        if match is None or resolved is None or not layout.is_within(match.group(1), resolved):
            raise BackupSetError(
                f"symlink target {links[path]!r} leaves its volume's files/ tree when the symlinks it "
                "passes through are followed",
                iso=iso,
                path=path,
            )


def _check_symlink(entry: ManifestEntry, iso: str) -> None:
    target = entry.target or ""
    match = _VOLUME_FILES.match(entry.path)
    if not match:
        raise BackupSetError("a symlink must lie inside a volume's files/ tree", iso=iso, path=entry.path)
    if target.startswith("/") or "\x00" in target or "\\" in target:
        raise BackupSetError(f"symlink target {target!r} must be relative", iso=iso, path=entry.path)
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(entry.path), target))
    if not layout.is_within(match.group(1), resolved):
        raise BackupSetError(
            f"symlink target {target!r} leaves its volume's files/ tree", iso=iso, path=entry.path
        )


def parse_backup_info(data: bytes, *, iso: str) -> BackupInfo:
    """Parse and check backup_info.yaml of one ISO."""
    path = layout.BACKUP_INFO_PATH
    try:
        document = load_yaml(data)
    except yaml.YAMLError as exc:
        raise BackupSetError(f"backup_info is not valid YAML: {exc}", iso=iso, path=path) from exc
    f = _Fields(document, iso=iso, path=path, what="backup_info")
    if document.get("format") not in layout.FORMATS:
        raise f.fail(f"format must be one of {', '.join(layout.FORMATS)}, found {document.get('format')!r}")
    raw_set = document.get("iso_set")
    if not isinstance(raw_set, list) or not raw_set:
        raise f.fail("iso_set must be a non-empty list")
    members = []
    for raw in raw_set:
        m = _Fields(raw, iso=iso, path=path, what="iso_set entry")
        members.append(IsoSetMember(m.text("name"), m.text("kind"), m.integer("sequence", minimum=1)))
    for key in ("encryption", "signing"):
        if not isinstance(document.get(key), dict):
            raise f.fail(f"{key} must be a mapping")
    source = document.get("source_environment") or {}
    if not isinstance(source, dict):
        raise f.fail("source_environment must be a mapping")
    created = document.get("created_at")
    return BackupInfo(
        backup_set_id=f.text("backup_set_id"),
        created_at=created.isoformat() if isinstance(created, datetime) else f.timestamp("created_at"),
        omnicloud_version=str(document.get("omnicloud_version", "")),
        source_environment=source,
        iso_set=members,
        encryption=document["encryption"],
        signing=document["signing"],
        format=document["format"],
    )
