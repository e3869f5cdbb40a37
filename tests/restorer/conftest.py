"""Helpers of the restorer tests (demo fixtures: tests/conftest.py): items of a set, tree comparison."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from omni_recovery.backupset.reader import DataKey, IsoReader, list_backup_set, unlock_data_key
from omni_recovery.restorer.files import RestoreItem, restore_items
from omni_recovery.targets.driver import PARTIAL_SUFFIX
from tests.demo_fixtures import PASSPHRASE

__all__ = ["PASSPHRASE", "assert_same_tree", "set_items", "snapshot"]


def set_items(location: Path | str) -> tuple[list[RestoreItem], DataKey]:
    """RestoreItems for every environment file of the set at `location`, and its data key."""
    items: list[RestoreItem] = []
    data_key = None
    for member in list_backup_set(str(location)):
        with IsoReader(member.url) as reader:
            items.extend(restore_items(reader))
            if reader.manifest.kind == "system-core":
                data_key = unlock_data_key(reader, PASSPHRASE)
    assert data_key is not None
    return items, data_key


def snapshot(root: Path) -> dict[str, tuple[str, int, object, int]]:
    """relpath → (type, permission bits, content or target, whole-second mtime) of every entry under root."""
    out: dict[str, tuple[str, int, object, int]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            full = Path(folder) / name
            rel = full.relative_to(root).as_posix()
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", 0, os.readlink(full), int(st.st_mtime))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), None, 0)
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), full.read_bytes(), int(st.st_mtime))
    return out


def assert_same_tree(env: Path, restored: Path) -> None:
    """The restored tree equals the environment: names, types, bytes, modes, symlink targets, mtimes."""
    want, got = snapshot(env), snapshot(restored)
    assert not [p for p in got if p.endswith(PARTIAL_SUFFIX)]
    assert sorted(set(want) ^ set(got)) == []
    for rel, (kind, mode, content, mtime) in want.items():
        g_kind, g_mode, g_content, g_mtime = got[rel]
        assert g_kind == kind, rel
        assert g_content == content, rel
        if kind != "dir":
            assert (g_mode, g_mtime) == (mode, mtime), rel
        elif "/files/" in rel:  # folders of a volume's tree are in the manifest with their mode
            assert g_mode == mode, rel
