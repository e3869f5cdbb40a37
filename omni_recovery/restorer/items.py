"""What a restore is asked for and what it gives back: one `RestoreItem` per manifest entry, and
the `RestoredFile`s and `RestoreSummary` it reports.

An item says where an entry's stored bytes lie (ISO file and extent offsets), what they must hash
to, and where they go under the target root (the environment path). Callers build the items from
the catalog's rows, or from opened readers with `restore_items()`; `resolve_links()` gives a hard
link (a later name of an inode) the stored bytes of its first name when those are restored too.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from omni_recovery.backupset import layout
from omni_recovery.backupset.attributes import FileAttributes
from omni_recovery.backupset.manifest import Encryption, ManifestEntry
from omni_recovery.backupset.reader import IsoReader
from omni_recovery.envstate.model import env_path
from omni_recovery.errors import BackupSetError
from omni_recovery.restorer.attributes import EntryMetadata

__all__ = ["RestoreItem", "RestoreSummary", "RestoredFile", "resolve_links", "restore_items"]


@dataclass(frozen=True, slots=True)
class RestoreItem:
    """One manifest entry to restore: where its stored bytes lie and where they go.

    `path` is relative to the target root (the environment path, `envstate.model.env_path`);
    all parts of a chunked file carry the same `path` (that of `chunk_of`). `mode` is the
    manifest's st_mode (only the permission bits are applied); `mtime` is RFC 3339 or None.
    `extents` are the (byte offset in the ISO, length) of the stored bytes' sections, in order
    (files only; a multi-extent file may have several, anywhere in the image).
    """

    iso_url: str
    iso_name: str
    stored_path: str
    path: str
    type: str = "file"
    size: int = 0
    sha256: str | None = None
    mode: int = 0o644
    target: str | None = None
    extents: tuple[tuple[int, int], ...] | None = None
    chunk_of: str | None = None
    chunk_index: int | None = None
    chunk_count: int | None = None
    logical_size: int | None = None
    logical_sha256: str | None = None
    encryption: Encryption | None = None
    mtime: str | None = None
    attributes: FileAttributes | None = None
    # A later name of an inode: the target path of its first name. The item carries the first
    # name's stored bytes (see `link_item`) when the first name may not be restored with it.
    hardlink: str | None = None

    @property
    def metadata(self) -> EntryMetadata:
        return EntryMetadata(self.path, self.type, self.mode, self.mtime, self.attributes)

    @classmethod
    def from_manifest(
        cls,
        iso_url: str,
        iso_name: str,
        entry: ManifestEntry,
        *,
        path: str,
        extents: Sequence[tuple[int, int]] | None,
    ) -> RestoreItem:
        chunk = entry.chunk
        return cls(
            iso_url=iso_url,
            iso_name=iso_name,
            stored_path=entry.path,
            path=path,
            type=entry.type,
            size=entry.size,
            sha256=entry.sha256,
            mode=entry.mode,
            target=entry.target,
            extents=None if extents is None else tuple(extents),
            chunk_of=chunk.chunk_of if chunk else None,
            chunk_index=chunk.chunk_index if chunk else None,
            chunk_count=chunk.chunk_count if chunk else None,
            logical_size=chunk.logical_size if chunk else None,
            logical_sha256=chunk.logical_sha256 if chunk else None,
            encryption=entry.encryption,
            mtime=entry.mtime,
            attributes=entry.attributes,
        )

    def link_item(self, first: RestoreItem) -> RestoreItem:
        """This hard link (a later name) as an item carrying its first name's stored bytes: restored
        as a link to `first.path` when the first name is restored with it, else as a file."""
        return dataclasses.replace(
            first, path=self.path, mtime=self.mtime, attributes=self.attributes, hardlink=first.path
        )

    @property
    def extent_offset(self) -> int | None:
        """Where the stored bytes start in the ISO (their first section), None if not a file."""
        return self.extents[0][0] if self.extents else None


@dataclass(frozen=True, slots=True)
class RestoredFile:
    """A file that was written, verified and renamed into place."""

    path: str
    size: int
    sha256: str
    isos: tuple[str, ...]
    stored_paths: tuple[str, ...]
    copied: int | None = None  # bytes copied from the set, when not `size` (a sparse file, a hard link)


@dataclass
class RestoreSummary:
    files: int = 0
    skipped: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes_written: int = 0
    bytes_skipped: int = 0
    seconds: float = 0.0
    restored: list[str] = field(default_factory=list)
    hardlinks: int = 0
    # What the target could not take (an owner, an xattr), and hard links restored as separate
    # files: one line per path, for the report.
    not_applied: list[str] = field(default_factory=list)


def restore_items(reader: IsoReader) -> list[RestoreItem]:
    """RestoreItems for every environment file of one opened ISO (metadata and the data key left out)."""
    items = []
    links = []
    for entry in reader.manifest.files:
        if not entry.path.startswith("data/") or entry.path == layout.DATA_KEY_PATH:
            continue
        if entry.hardlink is not None:
            links.append(
                RestoreItem.from_manifest(
                    reader.url, reader.name, entry, path=env_path(entry.path), extents=None
                )
            )
            continue
        logical = entry.chunk.chunk_of if entry.chunk else entry.path
        extents = None
        if entry.type == "file":
            image_entry = reader.listing.get(entry.path)
            if image_entry is None or image_entry.type != "file":
                raise BackupSetError(
                    "file listed in the manifest is missing from the image", iso=reader.name, path=entry.path
                )
            extents = image_entry.extents
        items.append(
            RestoreItem.from_manifest(reader.url, reader.name, entry, path=env_path(logical), extents=extents)
        )
    return items + resolve_links(links, items)


def resolve_links(links: Sequence[RestoreItem], files: Sequence[RestoreItem]) -> list[RestoreItem]:
    """Hard link items (their `hardlink` still the stored path of the first name) given the stored bytes
    of their first name from `files` where it is among them, else only its target path."""
    by_stored: dict[str, list[RestoreItem]] = defaultdict(list)
    for item in files:
        by_stored[item.chunk_of or item.stored_path].append(item)
    resolved: list[RestoreItem] = []
    for link in links:
        assert link.attributes is not None and link.attributes.hardlink is not None
        first = by_stored.get(link.attributes.hardlink)
        if first:
            resolved.extend(link.link_item(part) for part in first)
        else:
            resolved.append(dataclasses.replace(link, hardlink=env_path(link.attributes.hardlink)))
    return resolved
