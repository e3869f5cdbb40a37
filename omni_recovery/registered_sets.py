"""Which backup sets are registered, and where their ISOs are: what commands use when --path is left out.

A set counts as registered when `register-isos` put its ISOs in the workspace's registry; the
most recent one is the set with the latest `registered_at` in the recovery database among those.
Every ISO of a set lies in one folder (the format says so), which is the set's location.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Any

from omni_recovery.db.connection import connect
from omni_recovery.db.schema import init_database
from omni_recovery.db.server import database_url
from omni_recovery.errors import BackupSetError, RecoveryError
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


def _most_recent(settings: Settings, registered: set[str]) -> str:
    if not registered:
        raise RecoveryError(
            "no backup set is registered: run `omni-recovery register-isos --path FOLDER` first"
        )
    url = database_url(settings)
    init_database(url)
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT backup_set_id FROM omni.backup_sets WHERE backup_set_id = ANY(%s) "
            "ORDER BY registered_at DESC LIMIT 1",
            (sorted(registered),),
        ).fetchall()
    return str(rows[0][0]) if rows else sorted(registered)[-1]
