"""Final verification of a restore: every layout entry where it belongs, every restored byte re-hashed.

`verify_layout` checks that each entry of the target layout exists on its root with its type, and
that every rewritten document holds exactly the bytes the adaptation produced. `verify_data`
re-reads every file restored from the backup and hashes it against the digest the backup
recorded for its content (plaintext_sha256 for sealed files, logical_sha256 for other chunked ones), so
a file damaged on the target after it was written is caught. Both return problems as text lines;
the caller fails the step when there is any.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from omni_recovery.backupset.manifest import ManifestEntry
from omni_recovery.backupset.reader import IsoReader
from omni_recovery.envstate.model import env_path
from omni_recovery.targets.driver import TargetRoot
from transforms.target_layout import TargetFile, TargetLayout

Progress = Callable[[str, int], None]


def verify_layout(
    layout: TargetLayout, roots: Mapping[str, TargetRoot], files: Sequence[TargetFile]
) -> list[str]:
    problems = []
    for target_file in files:
        target = roots[target_file.root]
        where = f"{target.url}: {target_file.relpath}"
        listing_type = target.kind(target_file.relpath)
        if listing_type is None:
            problems.append(f"{where}: missing")
        elif listing_type != target_file.type:
            problems.append(f"{where}: is a {listing_type}, expected a {target_file.type}")
        elif (
            target_file.content is not None and target.read_bytes(target_file.relpath) != target_file.content
        ):
            problems.append(f"{where}: differs from the adapted document")
    return problems


def verify_data(
    roots: Mapping[str, TargetRoot],
    entries: Mapping[str, list[tuple[IsoReader, ManifestEntry]]],
    files: Sequence[TargetFile],
    recorded: Callable[[str], Mapping[str, tuple[str | None, int]]],
    progress: Progress,
    *,
    rehash: bool = False,
) -> list[str]:
    """Every file restored from the backup checked against the digest the backup recorded for it.

    By default the digest is the one the restorer computed over the bytes as it wrote them
    (`recorded(root)`: path → (sha256, size), from the recovery database) and the file must still be
    there with that size; with `rehash` every file is read again and hashed (about one more pass
    over all the data)."""
    problems = []
    by_root: dict[str, Mapping[str, tuple[str | None, int]]] = {}
    for target_file in files:
        if target_file.source is None or target_file.type != "file":
            continue
        expected = expected_digest(_content_entries(entries, target_file.source))
        target = roots[target_file.root]
        where = f"{target.url}: {target_file.relpath}"
        found: str | None
        if rehash:
            found, size = target.sha256(target_file.relpath)
            progress("verify", size)
        else:
            if target_file.root not in by_root:
                by_root[target_file.root] = recorded(target_file.root)
            found, size = by_root[target_file.root].get(target_file.relpath, (None, -1))
            if found is None:
                problems.append(f"{where}: not recorded as restored and verified")
                continue
            if target.size(target_file.relpath) != size:
                problems.append(f"{where}: size is {target.size(target_file.relpath)}, {size} was written")
                continue
        if found != expected:
            problems.append(f"{where}: sha256 {found}, the backup recorded {expected}")
    return problems


def _content_entries(
    entries: Mapping[str, list[tuple[IsoReader, ManifestEntry]]], source: str
) -> list[ManifestEntry]:
    """The entries holding the content of the environment file `source`: a hard link's first name's."""
    found = [entry for _, entry in entries[source]]
    if found[0].hardlink is not None:
        return [entry for _, entry in entries[env_path(found[0].hardlink)]]
    return found


def expected_digest(parts: Sequence[ManifestEntry]) -> str | None:
    """What a restored file's content must hash to, from its manifest entry or entries (parts)."""
    first = parts[0]
    if first.encryption is not None:  # a sealed file, chunked or not, is restored decrypted
        return first.encryption.plaintext_sha256
    if first.chunk is not None:
        return first.chunk.logical_sha256
    if first.attributes is not None and first.attributes.sparse is not None:
        return first.attributes.sparse.logical_sha256  # holes read as zeros
    return first.sha256
