"""Shallow checks over all the ISOs of a set: is it one whole set, and does everything resolve?

`check_set` takes every ISO file found in the set folder by name, with its opened reader (or
None when it could not be opened). The set is the one the system-core ISO names (else the most
common backup_set_id among the file names), and its `iso_set` (from system-core's
backup_info, else the first readable one) is the yardstick: every ISO it names is present,
nothing else is, no ISO of another set is mixed in, the kinds and their sequences follow the
format, and every ISO carries the identical backup_info. ISOs that are not members (not in
iso_set, or of another set) are reported once as such and left out of what follows. Then
references: every dependency, parent and manifest `component` names a component of the set,
each index's `files` rows name files of its own manifest, each component is carried by an ISO of
its kind (unless an ISO of that kind is unreadable, which is reported already) and no data file is
in two ISOs. The chunked files' parts and the hard links are checked in `set_files.py`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

import yaml

from omni_recovery.backupset import layout
from omni_recovery.backupset.index_db import RecoveryIndex
from omni_recovery.backupset.manifest import BackupInfo, ManifestEntry
from omni_recovery.backupset.reader import IsoReader
from omni_recovery.errors import BackupSetError
from omni_recovery.validate import problems as p
from omni_recovery.validate.iso_checks import index_of, manifest_of
from omni_recovery.validate.problems import Problem
from omni_recovery.validate.set_files import check_chunks, check_hardlinks, iso_name
from omni_recovery.yaml_text import load_yaml


def set_identity(names: list[str]) -> str | None:
    """The backup_set_id a folder of ISO names is about: system-core's, else the most common one."""
    parsed = [iso_name(n) for n in names]
    cores = [n.backup_set_id for n in parsed if n is not None and n.kind == layout.SYSTEM_CORE]
    if len(set(cores)) == 1:
        return cores[0]
    ids = Counter(n.backup_set_id for n in parsed if n is not None)
    return ids.most_common(1)[0][0] if ids else None


def check_set(readers: Mapping[str, IsoReader | None]) -> list[Problem]:
    """Every set-level problem; `readers` maps each ISO file name found to its reader or None."""
    found: list[Problem] = []
    set_id = set_identity(list(readers))
    if set_id is None:
        return [p.error(p.SET_COMPLETENESS, "the folder holds no ISO of a backup set")]
    mine = {name: r for name, r in readers.items() if (n := iso_name(name)) and n.backup_set_id == set_id}
    for name in readers:
        parsed = iso_name(name)
        if parsed is not None and parsed.backup_set_id != set_id:
            found.append(
                p.error(
                    p.SET_MEMBERSHIP,
                    f"an ISO of another backup set ({parsed.backup_set_id}) is mixed into set {set_id}",
                    iso=name,
                    expected=set_id,
                    found=parsed.backup_set_id,
                )
            )
    info, info_iso = _reference_info(mine)
    if info is None:
        found.append(
            p.error(
                p.SET_COMPLETENESS,
                "no ISO of the set has a readable backup_info, so its completeness cannot be judged",
            )
        )
    else:
        found.extend(_check_completeness(set_id, info, mine))
        found.extend(_check_backup_info_identical(mine, info_iso))
    found.extend(_check_kinds(mine, info))
    # An ISO that is not a member (reported above) is left out of the content checks: its files
    # would otherwise show up again as duplicates or stray references.
    named = {m.name for m in info.iso_set} if info is not None else set(mine)
    members = {name: r for name, r in mine.items() if name in named}
    found.extend(_check_references(members))
    found.extend(check_chunks(members))
    found.extend(check_hardlinks(members))
    return found


def _info(reader: IsoReader | None) -> BackupInfo | None:
    if reader is None:
        return None
    try:
        return reader.backup_info
    except BackupSetError:
        return None


def _reference_info(mine: Mapping[str, IsoReader | None]) -> tuple[BackupInfo | None, str | None]:
    ordered = sorted(
        mine, key=lambda n: (iso_name(n) or layout.IsoName("", "", 0)).kind != layout.SYSTEM_CORE
    )
    for name in ordered:
        info = _info(mine[name])
        if info is not None:
            return info, name
    return None, None


def _check_completeness(set_id: str, info: BackupInfo, mine: Mapping[str, IsoReader | None]) -> list[Problem]:
    found: list[Problem] = []
    named = {m.name: m for m in info.iso_set}
    for member in info.iso_set:
        try:
            expected = layout.iso_filename(set_id, member.kind, member.sequence)
        except BackupSetError as exc:
            found.append(p.error(p.SET_COMPLETENESS, f"iso_set entry {member.name}: {exc.reason}"))
            continue
        if member.name != expected:
            found.append(
                p.error(
                    p.SET_COMPLETENESS,
                    "an iso_set entry's name does not match its kind and sequence",
                    iso=member.name,
                    path=layout.BACKUP_INFO_PATH,
                    expected=expected,
                    found=member.name,
                )
            )
        if member.name not in mine:
            found.append(
                p.error(
                    p.SET_COMPLETENESS,
                    "an ISO named in iso_set is missing from the set folder",
                    iso=member.name,
                    expected="present",
                    found="missing",
                )
            )
    for name in mine:
        if name not in named:
            found.append(
                p.error(
                    p.SET_COMPLETENESS,
                    "an ISO in the set folder is not named in iso_set",
                    iso=name,
                    expected="not present",
                    found="present",
                )
            )
    return found


def _check_backup_info_identical(
    mine: Mapping[str, IsoReader | None], reference: str | None
) -> list[Problem]:
    """Every ISO's backup_info says what the reference ISO's says (compared as YAML documents, iso_set in
    any order: another writer may lay the same document out otherwise)."""
    ref_reader = mine.get(reference or "")
    if ref_reader is None:
        return []
    expected = _backup_info_document(ref_reader)
    found: list[Problem] = []
    for name, reader in mine.items():
        if reader is None or name == reference:
            continue
        try:
            document = _backup_info_document(reader)
        except BackupSetError:
            continue  # reported by check_iso
        if document == expected:
            continue
        if isinstance(document, dict) and isinstance(expected, dict):
            keys = sorted(k for k in set(document) | set(expected) if document.get(k) != expected.get(k))
            differs = f"differs in {', '.join(map(str, keys))}"
        else:
            differs = "does not parse as a mapping"
        found.append(
            p.error(
                p.BACKUP_INFO_CONSISTENT,
                f"backup_info differs from the one in {reference}",
                iso=name,
                path=layout.BACKUP_INFO_PATH,
                expected=f"the document of {reference}",
                found=differs,
            )
        )
    return found


def _backup_info_document(reader: IsoReader) -> Any:
    """backup_info as a YAML document with iso_set in a fixed order; None when it does not parse."""
    try:
        document = load_yaml(reader.backup_info_bytes)
    except yaml.YAMLError:
        return None
    if isinstance(document, dict) and isinstance(document.get("iso_set"), list):
        members = document["iso_set"]
        document = {
            **document,
            "iso_set": sorted(members, key=lambda m: json.dumps(m, sort_keys=True, default=str)),
        }
    return document


def _check_kinds(mine: Mapping[str, IsoReader | None], info: BackupInfo | None) -> list[Problem]:
    """Counts per kind and sequences without gaps, in iso_set and in the folder."""
    found: list[Problem] = []
    sources: list[tuple[str, list[tuple[str, int]]]] = [
        ("in the set folder", [(n.kind, n.sequence) for name in mine if (n := iso_name(name))])
    ]
    if info is not None:
        sources.append(("in iso_set", [(m.kind, m.sequence) for m in info.iso_set]))
    for where, members in sources:
        path = layout.BACKUP_INFO_PATH if where == "in iso_set" else None
        by_kind: dict[str, list[int]] = defaultdict(list)
        for kind, sequence in members:
            by_kind[kind].append(sequence)
        for kind, (low, high) in layout.KIND_COUNTS.items():
            count = len(by_kind.get(kind, []))
            if count < low or (high is not None and count > high):
                bound = f"{low}" if low == high else f"{low} to {high if high is not None else 'any'}"
                found.append(
                    p.error(
                        p.KIND_COUNTS,
                        f"{count} ISO(s) of kind {kind} {where}",
                        expected=bound,
                        found=count,
                        path=path,
                    )
                )
        for kind, sequences in by_kind.items():
            want = list(range(1, len(sequences) + 1))
            if sorted(sequences) != want:
                found.append(
                    p.error(
                        p.SEQUENCE,
                        f"the sequence numbers of kind {kind} {where} have gaps or repeats",
                        expected=",".join(map(str, want)),
                        found=",".join(map(str, sorted(sequences))),
                        path=path,
                    )
                )
    return found


def _check_references(mine: Mapping[str, IsoReader | None]) -> list[Problem]:
    found: list[Problem] = []
    indexes: dict[str, RecoveryIndex] = {}
    manifests: dict[str, list[ManifestEntry]] = {}
    kinds: dict[str, str] = {}
    unreadable: set[str] = set()  # kinds with an ISO present whose index cannot be read
    for name, reader in mine.items():
        parsed = iso_name(name)
        if parsed is None:
            continue
        kinds[name] = parsed.kind
        files = manifest_of(reader) if reader is not None else None
        index = index_of(reader) if reader is not None and files is not None else None
        if files is not None:
            manifests[name] = files
        if isinstance(index, RecoveryIndex):
            indexes[name] = index
        else:
            unreadable.add(parsed.kind)
    core = [n for n in indexes if kinds[n] == layout.SYSTEM_CORE]
    if not core:
        if any(k == layout.SYSTEM_CORE for k in kinds.values()) or not indexes:
            return found  # its index is unreadable (reported per ISO) or nothing is readable
        found.append(p.error(p.REFERENCES, "no system-core index: the set's components cannot be resolved"))
        return found
    known = {c.component_id: c for index in indexes.values() for c in index.components}
    core_index = indexes[core[0]]

    carried: dict[str, set[str]] = defaultdict(set)
    for name, index in indexes.items():
        for component in index.components:
            carried[component.component_id].add(kinds[name])
    with_files = {entry.component for files in manifests.values() for entry in files}
    for component in core_index.components:
        kind = component.iso_kind
        if kind == layout.SYSTEM_CORE or kind in unreadable or kind in carried[component.component_id]:
            continue
        # A component without files is carried by no ISO: the format does not ask for it elsewhere.
        report = p.error if component.component_id in with_files else p.warning
        found.append(
            report(
                p.REFERENCES,
                f"component {component.component_id} is in no ISO of its kind {component.iso_kind}"
                + ("" if component.component_id in with_files else " (it has no files in the set)"),
                iso=core[0],
                path=layout.INDEX_DB_PATH,
                expected=f"an ISO of kind {component.iso_kind} carrying it",
                found="none",
            )
        )

    # An index may name a file held by another ISO (system-core's may map the whole set) or a chunked
    # file by its logical path: the format only asks that what it names exists in the set.
    in_any_manifest = {
        path
        for files in manifests.values()
        for entry in files
        for path in (entry.path, entry.chunk.chunk_of if entry.chunk else entry.path)
    }
    for name, index in indexes.items():
        if name not in manifests:
            continue
        for component in index.components:
            if component.parent_id is not None and component.parent_id not in known:
                found.append(_dangling(name, f"the parent of {component.component_id}", component.parent_id))
        for dep in index.dependencies:
            for end in (dep.component_id, dep.depends_on_id):
                if end not in known:
                    found.append(
                        _dangling(name, f"the dependency {dep.component_id} -> {dep.depends_on_id}", end)
                    )
        for path, component_id in index.files:
            if path not in in_any_manifest:
                found.append(
                    p.error(
                        p.REFERENCES,
                        "the recovery index lists a file no manifest of the set does",
                        iso=name,
                        path=path,
                        expected="listed in a manifest (as a file, or as the whole of a chunked one)",
                        found="not listed",
                    )
                )
            if component_id and component_id not in known:
                found.append(_dangling(name, f"the file {path}", component_id))
    for name, files in manifests.items():
        for entry in files:
            if entry.component is not None and known and entry.component not in known:
                found.append(
                    p.error(
                        p.REFERENCES,
                        f"the manifest names component {entry.component}, which no ISO's index holds",
                        iso=name,
                        path=entry.path,
                        expected="a component of the set",
                        found=entry.component,
                    )
                )

    # Only data/ is restored; metadata/, recovery.log and scripts/ belong to each ISO.
    where: dict[str, list[str]] = defaultdict(list)
    for name, files in manifests.items():
        for entry in files:
            if entry.type == "file" and entry.path.startswith("data/"):
                where[entry.path].append(name)
    for path, names in where.items():
        if len(names) > 1:
            found.append(
                p.error(
                    p.DUPLICATE_PATHS,
                    "the same file is stored in several ISOs; which one to restore is ambiguous",
                    iso=", ".join(sorted(names)),
                    path=path,
                    expected="1 ISO",
                    found=f"{len(names)} ISOs",
                )
            )
    return found


def _dangling(iso: str, what: str, component_id: str) -> Problem:
    return p.error(
        p.REFERENCES,
        f"{what} names component {component_id}, which is in no ISO of the set",
        iso=iso,
        path=layout.INDEX_DB_PATH,
        expected="a component of the set",
        found=component_id,
    )
