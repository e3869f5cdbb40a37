"""Whole backup sets another writer could make: documents in generated shapes, images made by xorriso.

`foreign_set(base, choose, folder)` takes the files of a set this project wrote (volume data and
sealed files as stored; the set's documents are written again by tests/foreign_shapes.py in the
shapes `choose` picks), lists them in new manifests, signs those with the set's key and writes every
image with `xorriso -as mkisofs` (Rock Ridge and Joliet, xorriso's own directory order and extent
placement), not pycdlib. It returns the set and the source folder it stands for (the base
environment with the reshaped documents), to compare a restore with.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import yaml

from omni_recovery.backupset import layout
from omni_recovery.backupset.reader import IsoReader
from omni_recovery.backupset.signing import load_signing_key, public_pem
from omni_recovery.envstate.model import env_path
from tests.backupset.conftest import DemoSet
from tests.foreign_shapes import Choose, Texts, reshape

XORRISO = shutil.which("xorriso")


def foreign_set(
    base: DemoSet, texts: Texts, choose: Choose, folder: Path, set_id: str
) -> tuple[DemoSet, Path]:
    """`base` written again as another writer would, as set `set_id` (see the module doc); returns
    (set, source)."""
    reshaped = reshape(texts, choose)
    old_id = next(base.output.glob("*.iso")).name.split("_")[0]
    source = folder / "env"
    shutil.copytree(base.env, source, symlinks=True)
    output = folder / "set"
    output.mkdir(parents=True)
    for iso in sorted(base.output.glob("*.iso")):
        name = iso.name.replace(old_id, set_id, 1)
        written = _rewrite_iso(
            iso, base, reshaped, folder / "trees" / iso.stem, output / name, (old_id, set_id)
        )
        for rel in written:
            (source / rel).write_text(reshaped[rel], encoding="utf-8")
    return replace(base, output=output, env=source), source


def _rewrite_iso(
    iso: Path, base: DemoSet, reshaped: Texts, tree: Path, target: Path, ids: tuple[str, str]
) -> list[str]:
    """One image of `base` with its plain documents reshaped, made by xorriso; the env paths replaced."""
    key = load_signing_key(base.key_path)
    written: list[str] = []
    replaced: set[str] = set()
    with IsoReader(str(iso)) as reader:
        manifest = json.loads(reader.manifest_bytes)
        manifest["backup_set_id"] = ids[1]
        info = _renamed_info(reader.raw(layout.BACKUP_INFO_PATH), *ids)
        for entry in manifest["files"]:
            data_file = entry["path"].startswith("data/") and entry["path"] != layout.DATA_KEY_PATH
            rel = env_path(entry["path"]) if data_file else None
            if rel in reshaped and not entry.get("encryption") and not entry.get("chunk_of"):
                data = reshaped[rel].encode("utf-8")
                entry["size"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
                _write(tree, entry["path"], data, entry.get("mode", 0o100644))
                written.append(rel)
                replaced.add(entry["path"])
        for path, item in reader.listing.items():
            if path in replaced or path.startswith(layout.SIGNATURE_DIR) or path == layout.BACKUP_INFO_PATH:
                continue
            if item.type == "dir":
                (tree / path).mkdir(parents=True, exist_ok=True)
            elif item.type == "symlink":
                (tree / path).parent.mkdir(parents=True, exist_ok=True)
                os.symlink(item.symlink_target or "", tree / path)
            elif path != layout.MANIFEST_PATH:
                _write(tree, path, reader.image.read_bytes(item, limit=1 << 34), item.mode or 0o100644)
    _write(tree, layout.BACKUP_INFO_PATH, info, 0o100644)
    for entry in manifest["files"]:
        if entry["path"] == layout.BACKUP_INFO_PATH:
            entry["size"], entry["sha256"] = len(info), hashlib.sha256(info).hexdigest()
    manifest_bytes = json.dumps(manifest, indent=1).encode("utf-8")
    _write(tree, layout.MANIFEST_PATH, manifest_bytes, 0o100644)
    _write(tree, layout.MANIFEST_SIG_PATH, key.sign(manifest_bytes), 0o100644)
    _write(tree, layout.BACKUP_INFO_SIG_PATH, key.sign(info), 0o100644)
    _write(tree, layout.SIGNER_PUB_PATH, public_pem(key.public_key()), 0o100644)
    assert XORRISO is not None
    command = [XORRISO, "-as", "mkisofs", "-quiet", "-R", "-J", "-joliet-long", "-o", str(target), str(tree)]
    subprocess.run(command, check=True, capture_output=True)
    return written


def _renamed_info(data: bytes, old_id: str, new_id: str) -> bytes:
    """backup_info.yaml for set `new_id`, in another layout than this project's writer uses."""
    info = yaml.safe_load(data)
    info["backup_set_id"] = new_id
    for item in info["iso_set"]:
        item["name"] = item["name"].replace(old_id, new_id, 1)
    return yaml.safe_dump(info, default_flow_style=True, width=100).encode("utf-8")


def _write(tree: Path, path: str, data: bytes, mode: int) -> None:
    target = tree / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    target.chmod(mode & 0o7777)
