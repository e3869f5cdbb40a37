"""Resources of the code location: where each registered ISO lives, and progress reporting.

How it works
------------
`BackupSetRegistry` keeps, in one JSON file of the workspace (`<workspace>/iso_registry.json`),
every registered ISO's partition key (its file name) with its URL, size, set id, kind and
sequence. `register-isos` and the watched-folder sensor write it (`register`); the ingest assets
read it (`lookup`) to find the image of the partition they materialise. Its `watch_url` is the
folder the sensor watches (unset: the sensor skips). Writes go to a temporary file then replace
the old one, so a reader never sees half a file.

`Progress` is a plain object resource: the command line passes one that draws a bar, the
Dagster UI gets the silent default.

What can go wrong
-----------------
A partition key that is not in the registry (a key added by hand in the UI, or a registry file
deleted) fails its ingest with a message saying to run `register-isos` again. Two processes
registering at once may lose one's entry (last writer wins); the key stays a partition and the
next registration restores it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource

from omni_recovery.backupset.reader import SetMember
from omni_recovery.errors import BackupSetError
from omni_recovery.register.registered_sets import REGISTRY_FILE, registry_entries
from omni_recovery.settings import Settings
from omni_recovery.whole_file import write_text_whole

__all__ = ["REGISTRY_FILE", "BackupSetRegistry", "Progress"]


class BackupSetRegistry(ConfigurableResource):
    """Partition key (ISO file name) → where the ISO lives; kept in the workspace."""

    workspace: str
    watch_url: str | None = None

    @property
    def path(self) -> Path:
        return Path(self.workspace) / REGISTRY_FILE

    def entries(self) -> dict[str, dict[str, Any]]:
        """Every registered ISO by partition key."""
        return registry_entries(Path(self.workspace))

    def register(self, members: Iterable[SetMember]) -> list[str]:
        """Record the ISOs (replacing earlier entries of the same name); returns their keys."""
        entries = self.entries()
        keys = []
        for m in members:
            key = m.name.filename
            entries[key] = {
                "url": m.url,
                "size": m.size,
                "backup_set_id": m.name.backup_set_id,
                "kind": m.name.kind,
                "sequence": m.name.sequence,
            }
            keys.append(key)
        self._write(entries)
        return keys

    def restore(self, keys: Iterable[str], previous: dict[str, dict[str, Any]]) -> None:
        """Put `keys` back as they were in `previous` (absent keys removed): undo a failed registration."""
        entries = self.entries()
        for key in keys:
            if key in previous:
                entries[key] = previous[key]
            else:
                entries.pop(key, None)
        self._write(entries)

    def lookup(self, key: str) -> dict[str, Any]:
        """The registry entry of one partition key; a clear error when it is unknown."""
        entry = self.entries().get(key)
        if entry is None:
            raise BackupSetError(
                f"ISO {key} is a partition but not in the registry {self.path}: run "
                "`omni-recovery register-isos --path FOLDER` for its set again",
                iso=key,
            )
        return entry

    def _write(self, entries: dict[str, dict[str, Any]]) -> None:
        write_text_whole(self.path, json.dumps({"isos": entries}, indent=1, sort_keys=True))


class Progress:
    """Progress callback `(phase, amount)`; the default does nothing."""

    def __init__(self, callback: Callable[[str, int], None] | None = None) -> None:
        self._callback = callback

    def advance(self, phase: str, amount: int = 1) -> None:
        if self._callback is not None:
            self._callback(phase, amount)


class PracticeResource(ConfigurableResource):
    """Where and how to practise: the workspace, its database, and the knobs of each job."""

    workspace: str
    database_url: str = ""
    verify_slices: int = 7
    drill_path: str = ""
    max_set_age_hours: float = 26.0

    @property
    def settings(self) -> Settings:
        return Settings(workspace=Path(self.workspace), database_url=self.database_url or None)
