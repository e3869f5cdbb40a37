"""Checks over the files of a whole set: the parts of each chunked file, and every hard link.

`check_chunks`: the parts of each chunked file are all there, once each, agree on its size, hash
and encryption, add up to its logical size and lie in ISOs of one kind. `check_hardlinks`: each
hard link names a file stored in the set (no hard link itself) in an ISO of its own kind.
`chunk_parts` gathers each chunked file's parts across the set (the deep checks read them too).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping

from omni_recovery.backupset import layout
from omni_recovery.backupset.manifest import ManifestEntry
from omni_recovery.backupset.reader import IsoReader
from omni_recovery.errors import BackupSetError
from omni_recovery.validate import problems as p
from omni_recovery.validate.iso_checks import encryption_disagrees, manifest_of
from omni_recovery.validate.problems import Problem


def iso_name(name: str) -> layout.IsoName | None:
    """The parts of an ISO file name, or None when it is not the name of an ISO of a set."""
    try:
        return layout.parse_iso_filename(name)
    except BackupSetError:
        return None


def chunk_parts(
    readers: Mapping[str, IsoReader | None],
) -> dict[str, list[tuple[str, ManifestEntry]]]:
    """Each chunked file's parts as (ISO name, entry), ordered by chunk_index."""
    parts: dict[str, list[tuple[str, ManifestEntry]]] = defaultdict(list)
    for name, reader in readers.items():
        files = manifest_of(reader) if reader is not None else None
        for entry in files or []:
            if entry.chunk is not None:
                parts[entry.chunk.chunk_of].append((name, entry))
    for pieces in parts.values():
        pieces.sort(key=lambda piece: piece[1].chunk.chunk_index if piece[1].chunk else 0)
    return dict(parts)


def check_chunks(mine: Mapping[str, IsoReader | None]) -> list[Problem]:
    found: list[Problem] = []
    for logical, pieces in chunk_parts(mine).items():
        chunks = [(iso, e, e.chunk) for iso, e in pieces if e.chunk is not None]
        count = chunks[0][2].chunk_count
        indexes = [c.chunk_index for _, _, c in chunks]
        for index in range(count):
            if index not in indexes:
                found.append(
                    p.error(
                        p.CHUNKS,
                        f"part {index} of {count} is in no ISO of the set",
                        path=layout.chunk_part_path(logical, index),
                        expected="present",
                        found="missing",
                    )
                )
        for index, n in Counter(indexes).items():
            if n > 1:
                found.append(
                    p.error(
                        p.CHUNKS,
                        f"part {index} of {logical} is stored {n} times",
                        iso=", ".join(sorted(iso for iso, _, c in chunks if c.chunk_index == index)),
                        path=layout.chunk_part_path(logical, index),
                        expected="1",
                        found=n,
                    )
                )
        if len({e.encryption for _, e, _ in chunks}) > 1:
            isos = ", ".join(sorted({iso for iso, _, _ in chunks}))
            found.append(encryption_disagrees(p.CHUNKS, logical, iso=isos, path=logical))
        meta = {(c.chunk_count, c.logical_size, c.logical_sha256) for _, _, c in chunks}
        if len(meta) > 1:
            found.append(
                p.error(
                    p.CHUNKS,
                    "the parts disagree on chunk_count, logical_size or logical_sha256",
                    path=logical,
                    found="; ".join("/".join(map(str, m)) for m in sorted(meta)),
                )
            )
            continue
        if sorted(indexes) == list(range(count)):
            total = sum(e.size for _, e, _ in chunks)
            if total != chunks[0][2].logical_size:
                found.append(
                    p.error(
                        p.CHUNKS,
                        "the parts' sizes do not add up to the file's logical_size",
                        path=logical,
                        expected=chunks[0][2].logical_size,
                        found=total,
                    )
                )
        kinds = {named.kind for iso, _, _ in chunks if (named := iso_name(iso)) is not None}
        if len(kinds) > 1:
            found.append(
                p.error(
                    p.CHUNKS,
                    "the parts of one file lie in ISOs of different kinds",
                    path=logical,
                    found=", ".join(sorted(kinds)),
                )
            )
    return found


def check_hardlinks(mine: Mapping[str, IsoReader | None]) -> list[Problem]:
    """Each hard link names a file of the set (its first name, stored whole or in parts) that is no
    hard link itself, in an ISO of the same kind."""
    stored: dict[str, str] = {}  # a file's path (a chunked one's logical path) -> its ISO's kind
    links: list[tuple[str, ManifestEntry]] = []
    for name, reader in mine.items():
        parsed = iso_name(name)
        for entry in (manifest_of(reader) if reader is not None and parsed else None) or []:
            if entry.hardlink is not None:
                links.append((name, entry))
            elif entry.type == "file" and parsed is not None:
                stored[entry.chunk.chunk_of if entry.chunk else entry.path] = parsed.kind
    found = []
    for name, entry in links:
        parsed = iso_name(name)
        kind = stored.get(entry.hardlink or "")
        if parsed is None or kind == parsed.kind:
            continue
        found.append(
            p.error(
                p.HARDLINKS,
                f"hard link to {entry.hardlink}, which is "
                + (f"in an ISO of kind {kind}" if kind else "no file stored in the set"),
                iso=name,
                path=entry.path,
                expected=f"a stored file in an ISO of kind {parsed.kind}",
                found=kind or "nothing",
            )
        )
    return found
