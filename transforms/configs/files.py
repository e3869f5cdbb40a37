"""Which files of a set are configuration, the parts of a chunked one joined, and parsing one.

`is_config_path(path)`: everything under `data/` that is YAML or JSON, except volume file trees, key
material and encrypted files. `whole_config_files(rows)` joins the parts of a file another writer
chunked, in chunk order, checked against its logical_sha256. `parse_document(path, data)` parses by
suffix (.yaml/.yml, .json, .jsonl as a list of objects); a file that does not parse raises
BackupSetError naming it.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import yaml

from omni_recovery.backupset.manifest import join_chunks
from omni_recovery.errors import BackupSetError
from omni_recovery.yaml_text import load_yaml

_VOLUME_FILES = re.compile(r"^data/volumes/[^/]+/[^/]+/files/")
_SUFFIXES = (".yaml", ".yml", ".json", ".jsonl")


def is_config_path(path: str, *, encrypted: bool = False) -> bool:
    """True for a configuration file worth parsing into the catalog."""
    if encrypted or not path.startswith("data/") or not path.endswith(_SUFFIXES):
        return False
    return not (_VOLUME_FILES.match(path) or path.startswith("data/keys/"))


def whole_config_files(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Configuration file rows (backup_set_id, iso_name, path, component_id, content, and the chunk
    columns of a part) with the parts of a chunked file joined into one row under its logical path,
    in chunk order, named by its first part's ISO. A file some of whose parts are not registered yet
    is left out until they are; a joined file that differs from its logical_sha256/logical_size
    raises BackupSetError naming it."""
    whole: list[dict[str, Any]] = []
    parts: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("chunk_of") is None:
            whole.append({name: row[name] for name in _FILE_COLUMNS})
        else:
            parts[(row["backup_set_id"], row["chunk_of"])].append(row)
    for (_, logical), pieces in sorted(parts.items()):
        pieces.sort(key=lambda piece: piece["chunk_index"])
        first = pieces[0]
        if [piece["chunk_index"] for piece in pieces] != list(range(first["chunk_count"])):
            continue
        try:
            content = join_chunks(
                [piece["content"] for piece in pieces], first["logical_size"], first["logical_sha256"]
            )
        except ValueError as exc:
            raise BackupSetError(str(exc), iso=first["iso_name"], path=logical) from exc
        whole.append({**{name: first[name] for name in _FILE_COLUMNS}, "path": logical, "content": content})
    return whole


_FILE_COLUMNS = ("backup_set_id", "iso_name", "path", "component_id", "content")


def parse_document(path: str, data: bytes) -> Any:
    """One configuration file parsed by its suffix (.yaml/.yml, .json, .jsonl as a list of objects)."""
    try:
        if path.endswith(".jsonl"):
            return [json.loads(line) for line in data.splitlines() if line.strip()]
        if path.endswith(".json"):
            return json.loads(data)
        return load_yaml(data)
    except (ValueError, yaml.YAMLError) as exc:
        raise BackupSetError(f"configuration cannot be parsed: {exc}", path=path) from exc
