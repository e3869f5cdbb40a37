"""Which backup sets are registered, and where their ISOs are: what commands use when --path is left out.

A set counts as registered when `register-isos` put its ISOs in the workspace's registry, which it
does only for a folder holding every ISO of the set's `iso_set` (`require_whole_sets`). The most
recent one is the set registered last: `record_registration` keeps each set's time in
omni.set_registrations, which re-registering another set leaves alone. Every ISO of a set lies in
one folder (the format says so), which is the set's location.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Any

from omni_recovery.backupset.reader import IsoReader, SetMember, list_backup_set
from omni_recovery.db.connection import connect
from omni_recovery.db.schema import init_database
from omni_recovery.db.server import database_url
from omni_recovery.errors import BackupSetError, RecoveryError, some_of
from omni_recovery.settings import Settings

REGISTRY_FILE = "iso_registry.json"


def registry_entries(workspace: Path) -> dict[str, dict[str, Any]]:
    """Every registered ISO by file name: url, size, backup_set_id, kind, sequence (kept by register-isos)."""
    path = workspace / REGISTRY_FILE
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise BackupSetError(f"the ISO registry {path} is damaged: {exc}") from exc
    return dict(data.get("isos", {}))


def registered_set_location(settings: Settings, backup_set_id: str | None = None) -> tuple[str, str]:
    """(backup_set_id, folder URL) of the named set, or of the most recently registered one."""
    entries = registry_entries(settings.workspace)
    folders: dict[str, set[str]] = {}
    for entry in entries.values():
        folders.setdefault(entry["backup_set_id"], set()).add(posixpath.dirname(entry["url"]))
    if backup_set_id is None:
        backup_set_id = _most_recent(settings, set(folders))
    if backup_set_id not in folders:
        known = ", ".join(sorted(folders)) or "none"
        raise RecoveryError(
            f"backup set {backup_set_id} is not registered (registered: {known}); "
            "run `omni-recovery register-isos --path FOLDER` first"
        )
    if len(folders[backup_set_id]) != 1:
        raise RecoveryError(
            f"the ISOs of backup set {backup_set_id} were registered from several folders: "
            + ", ".join(sorted(folders[backup_set_id]))
        )
    return backup_set_id, next(iter(folders[backup_set_id]))


def registered_set_at(settings: Settings, location: str) -> str | None:
    """The id of the set registered from exactly the ISOs at `location` (each at the same URL), else None."""
    members = list_backup_set(location)
    entries = registry_entries(settings.workspace)
    ids = {m.name.backup_set_id for m in members}
    if len(ids) == 1 and all(entries.get(m.name.filename, {}).get("url") == m.url for m in members):
        return ids.pop()
    return None


def _most_recent(settings: Settings, registered: set[str]) -> str:
    if not registered:
        raise RecoveryError(
            "no backup set is registered: run `omni-recovery register-isos --path FOLDER` first"
        )
    url = database_url(settings)
    init_database(url)
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT backup_set_id FROM omni.set_registrations WHERE backup_set_id = ANY(%s) "
            "ORDER BY registered_at DESC, backup_set_id DESC LIMIT 1",
            (sorted(registered),),
        ).fetchall()
    return str(rows[0][0]) if rows else sorted(registered)[-1]


def record_registration(database_url: str, backup_set_ids: list[str]) -> None:
    """These sets were registered now (the others keep their time)."""
    with connect(database_url) as conn:
        conn.cursor().executemany(
            "INSERT INTO omni.set_registrations (backup_set_id, registered_at) "
            "VALUES (%s, clock_timestamp()) "
            "ON CONFLICT (backup_set_id) DO UPDATE SET registered_at = excluded.registered_at",
            [(set_id,) for set_id in backup_set_ids],
        )
        conn.commit()


def require_whole_sets(location: str, members: list[SetMember]) -> None:
    """Refuse a folder that holds fewer ISOs than a set's `iso_set` names (read from one of its ISOs).
    An ISO whose backup_info names another set is left to the ingest, which says it is foreign."""
    by_set: dict[str, list[SetMember]] = {}
    for member in members:
        by_set.setdefault(member.name.backup_set_id, []).append(member)
    for set_id, found in by_set.items():
        with IsoReader(found[0].url) as reader:
            info = reader.backup_info
        if info.backup_set_id != set_id:
            continue
        missing = sorted({m.name for m in info.iso_set} - {m.name.filename for m in found})
        if missing:
            raise BackupSetError(
                f"{location} holds {len(info.iso_set) - len(missing)} of the {len(info.iso_set)} ISOs of "
                f"backup set {set_id}; missing: {some_of(missing)}. Nothing was registered: bring the "
                "whole set into one folder"
            )
