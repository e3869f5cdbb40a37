"""Sets laid out otherwise than our writer lays them out are validated and recovered like ours: images
another ISO 9660 writer made, backup_info written in another layout in each ISO, and the parts of a
file in ISOs out of sequence order (the format allows each).

The images are remade by libarchive's ISO 9660 writer (`bsdtar --format iso9660`: Rock Ridge and
Joliet, its own directory order and extent placement, and its `rr=useful` modes, 0444 for
files) from the files of the demo set's images, byte for byte. Nothing of the set's own
metadata changes, so signatures, digests and chunked files (parts spread over several
volume-data ISOs) stay valid: what differs is only how the images are laid out, which the reader
must follow by the standard alone.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from omni_recovery.backupset import layout
from omni_recovery.backupset.reader import IsoReader
from omni_recovery.backupset.signing import load_signing_key
from omni_recovery.envstate.model import env_path
from omni_recovery.restorer.files import restore_files
from omni_recovery.targets.driver import TargetRoot
from omni_recovery.validate import problems as p
from omni_recovery.validate import validate
from omni_recovery.yaml_text import load_yaml
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.checker.tamper import copy_set, edit_index, index_bytes, rebuild
from tests.restorer.conftest import set_items
from tests.test_recovery import digests, recovered, restored_tree
from tests.transforms.test_environment_model_foreign import demo_texts, spec_only

pytestmark = pytest.mark.skipif(shutil.which("bsdtar") is None, reason="needs bsdtar (libarchive-tools)")


@pytest.fixture
def workspace(tmp_path: Path, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OMNI_RECOVERY_DATABASE_URL", fresh_database_url)
    return tmp_path / "ws"


def remade_by_libarchive(demo: DemoSet, folder: Path) -> DemoSet:
    """The demo set with every ISO extracted and written again by libarchive."""
    output = folder / "set"
    output.mkdir(parents=True)
    for iso in sorted(demo.output.glob("*.iso")):
        tree = folder / "trees" / iso.stem
        tree.mkdir(parents=True)
        subprocess.run(["bsdtar", "-xf", str(iso), "-C", str(tree)], check=True)
        subprocess.run(
            ["bsdtar", "-c", "--format", "iso9660", "-f", str(output / iso.name), "-C", str(tree), "."],
            check=True,
        )
    return dataclasses.replace(demo, output=output)


def test_a_set_remade_by_libarchive_validates_and_restores_the_same(
    demo_set: DemoSet, tmp_path: Path, fresh_database_url: str, workspace: Path
) -> None:
    foreign = remade_by_libarchive(demo_set, tmp_path / "foreign")
    ours = {iso.name: iso.read_bytes() for iso in demo_set.output.glob("*.iso")}
    theirs = {iso.name: iso.read_bytes() for iso in foreign.output.glob("*.iso")}
    assert ours.keys() == theirs.keys() and all(ours[n] != theirs[n] for n in ours)
    with IsoReader(str(next(foreign.output.glob("*_volume-data_001.iso")))) as reader:
        assert any(entry.chunk for entry in reader.manifest.files), "the set holds chunked files"

    setup, report = recovered(foreign, tmp_path / "restore", workspace, fresh_database_url)
    assert report.passed, report.to_text()
    assert {p.check for p in report.problems} == {"modes"}, "only the images' own modes differ"

    source = digests(demo_set.env)
    restored = restored_tree(setup.plan, tmp_path / "gathered")
    data = [p for p in source if (p.startswith("volumes/") and "/files" in p) or p.endswith(".jsonl")]
    assert data and all(restored.get(p) == source[p] for p in data), "data restored byte for byte"
    for path in data:
        if source[path] != "dir" and not source[path].startswith("symlink:"):
            wanted = stat.S_IMODE(os.lstat(demo_set.env / path).st_mode)
            got = stat.S_IMODE(os.lstat(tmp_path / "gathered" / path).st_mode)
            assert got == wanted, f"{path}: mode {got:o}, the manifest says {wanted:o}"


def test_backup_info_laid_out_otherwise_in_each_iso_is_the_same_document(
    demo_set: DemoSet, tmp_path: Path
) -> None:
    relaid = copy_set(demo_set.output, tmp_path / "relaid")
    key = load_signing_key(demo_set.key_path)
    for number, iso in enumerate(sorted(relaid.glob("*.iso"))):
        with IsoReader(str(iso)) as reader:
            document = load_yaml(reader.backup_info_bytes)
        # keys in another order, flow style for some ISOs, iso_set listed backwards for others
        document = dict(reversed(document.items()))
        if number % 2:
            document["iso_set"] = list(reversed(document["iso_set"]))
        text = yaml.safe_dump(document, default_flow_style=bool(number % 3 == 0), sort_keys=bool(number % 2))
        rebuild(iso, key, replace={layout.BACKUP_INFO_PATH: text.encode()})
    report = validate(str(relaid), demo_set.trusted, PASSPHRASE, deep=True)
    assert report.passed and report.problems == [], report.to_text()

    with IsoReader(str(next(relaid.glob("*_network-configuration_001.iso")))) as reader:
        document = load_yaml(reader.backup_info_bytes)
    document["omnicloud_version"] = "9.9.9"
    rebuild(
        next(relaid.glob("*_network-configuration_001.iso")),
        key,
        replace={layout.BACKUP_INFO_PATH: yaml.safe_dump(document).encode()},
    )
    report = validate(str(relaid), demo_set.trusted, PASSPHRASE)
    (problem,) = [pr for pr in report.problems if pr.check == p.BACKUP_INFO_CONSISTENT]
    assert problem.blocking and problem.found == "differs in omnicloud_version"


def test_parts_of_a_file_in_isos_out_of_sequence_order_are_restored(
    demo_set: DemoSet, tmp_path: Path
) -> None:
    swapped = copy_set(demo_set.output, tmp_path / "swapped")
    first_part_in, second_part_in = _isos_of_parts(swapped, 0), _isos_of_parts(swapped, 1)
    assert first_part_in != second_part_in
    a, b = first_part_in, second_part_in
    key = load_signing_key(demo_set.key_path)
    names = {a: b.name, b: a.name}
    for iso, new_name in names.items():
        sequence = int(new_name.rsplit("_", 1)[1].removesuffix(".iso"))
        rebuild(iso, key, edit_manifest=functools.partial(_set_sequence, sequence=sequence))
    a.rename(tmp_path / "a.iso")
    b.rename(a)
    (tmp_path / "a.iso").rename(b)
    assert _isos_of_parts(swapped, 0) == b and _isos_of_parts(swapped, 1) == a, (
        "part 0 now lies in the later ISO"
    )

    report = validate(str(swapped), demo_set.trusted, PASSPHRASE, deep=True)
    assert report.passed and report.problems == [], report.to_text()
    items, data_key = set_items(swapped)
    restore_files(items, TargetRoot(str(tmp_path / "node")), data_key, parallel=2)
    big = next(i.path for i in items if i.chunk_of)
    assert (tmp_path / "node" / big).read_bytes() == (demo_set.env / big).read_bytes()


def _set_sequence(manifest: dict[str, Any], sequence: int) -> None:
    manifest["sequence"] = sequence


def _isos_of_parts(folder: Path, index: int) -> Path:
    """The volume-data ISO holding part `index` of the set's first chunked file that spans ISOs."""
    holders: dict[str, dict[int, Path]] = {}
    for iso in sorted(folder.glob("*_volume-data_*.iso")):
        with IsoReader(str(iso)) as reader:
            for entry in reader.manifest.files:
                if entry.chunk is not None:
                    holders.setdefault(entry.chunk.chunk_of, {})[entry.chunk.chunk_index] = iso
    spanning = sorted(k for k, parts in holders.items() if len(set(parts.values())) > 1)
    return holders[spanning[0]][index]


def test_a_component_without_files_need_not_be_in_an_iso_of_its_kind(
    demo_set: DemoSet, tmp_path: Path
) -> None:
    folder = copy_set(demo_set.output, tmp_path / "fileless")
    core = next(folder.glob("*_system-core_001.iso"))
    index = edit_index(
        index_bytes(core),
        "INSERT INTO components (component_id, kind, name, parent_id, priority, iso_kind, attributes) "
        "VALUES ('network:spare', 'network', 'spare', NULL, NULL, 'network-configuration', '{}')",
    )
    rebuild(core, load_signing_key(demo_set.key_path), replace={layout.INDEX_DB_PATH: index})
    report = validate(str(folder), demo_set.trusted, PASSPHRASE, deep=True)
    assert report.passed, report.to_text()
    (problem,) = report.problems
    assert problem.severity == "warning" and "network:spare" in problem.message


def test_another_writers_extra_files_and_folder_entries_are_restored_and_shared(
    demo_set: DemoSet, tmp_path: Path, workspace: Path, fresh_database_url: str
) -> None:
    folder = copy_set(demo_set.output, tmp_path / "extra")
    key = load_signing_key(demo_set.key_path)
    # ntp.yaml names no old address, so it is restored byte for byte; peers.yaml names one of the old
    # management subnet, which is adapted by value like every document's (issue 15)
    ntp, old_key = b"servers: [192.0.2.5]\n", b"old key material\n"
    peers = b"peer: 10.0.0.5:123\n"
    rebuild(
        next(folder.glob("*_system-core_001.iso")),
        key,
        add={
            "data/system/ntp.yaml": (ntp, {"component": "system:core"}),
            "data/system/peers.yaml": (peers, {"component": "system:core"}),
            "data/keys/old-ca.enc": (old_key, {"component": "system:core"}),
        },
    )
    network_folder = {"path": "data/network", "size": 0, "type": "dir", "mode": 0o40755, "component": None}
    rebuild(
        next(folder.glob("*_network-configuration_001.iso")),
        key,
        edit_manifest=lambda manifest: manifest["files"].append(network_folder),
    )
    extra = dataclasses.replace(demo_set, output=folder)
    setup, report = recovered(extra, tmp_path / "restore", workspace, fresh_database_url)
    assert report.passed, report.to_text()
    director_roots = [Path(TargetRoot(n.root, create=False).root) for n in setup.plan.nodes if n.director]
    assert director_roots
    for root in director_roots:
        assert (root / "system/ntp.yaml").read_bytes() == ntp
        assert (root / "keys/old-ca.enc").read_bytes() == old_key
        peer = yaml.safe_load((root / "system/peers.yaml").read_text())["peer"]
        management = next(ipaddress.ip_network(s.new) for s in setup.plan.subnets if s.name == "management")
        assert ipaddress.ip_address(peer.removesuffix(":123")) in management, peer


def test_scripts_in_every_iso_and_an_index_that_maps_the_whole_set(demo_set: DemoSet, tmp_path: Path) -> None:
    folder = copy_set(demo_set.output, tmp_path / "mapped")
    key = load_signing_key(demo_set.key_path)
    script = b"#!/bin/sh\necho checked\n"
    elsewhere = chunked = None
    for iso in sorted(folder.glob("*.iso")):
        with IsoReader(str(iso)) as reader:
            for entry in reader.manifest.files:
                if entry.chunk and chunked is None:
                    chunked = entry.chunk.chunk_of
                elif "_system-core_" not in iso.name and entry.path.startswith("data/") and elsewhere is None:
                    elsewhere = entry.path
        rebuild(iso, key, add={"scripts/validation/check.sh": (script, {"component": None})})
    core = next(folder.glob("*_system-core_001.iso"))
    index = edit_index(
        index_bytes(core),
        "INSERT INTO files (path, component_id) VALUES (?, NULL), (?, NULL)",
        (elsewhere, chunked),
    )
    rebuild(core, key, replace={layout.INDEX_DB_PATH: index})
    report = validate(str(folder), demo_set.trusted, PASSPHRASE, deep=True)
    assert report.passed and report.problems == [], report.to_text()

    index = edit_index(
        index_bytes(core), "INSERT INTO files (path, component_id) VALUES ('data/ghost', NULL)"
    )
    rebuild(core, key, replace={layout.INDEX_DB_PATH: index})
    (problem,) = validate(str(folder), demo_set.trusted, PASSPHRASE).blocking
    assert (problem.check, problem.path) == (p.REFERENCES, "data/ghost")


def test_key_ids_in_upper_case_hex_name_the_same_keys(demo_set: DemoSet, tmp_path: Path) -> None:
    folder = copy_set(demo_set.output, tmp_path / "upper")
    key = load_signing_key(demo_set.key_path)
    for iso in sorted(folder.glob("*.iso")):
        with IsoReader(str(iso)) as reader:
            document = load_yaml(reader.backup_info_bytes)
        for section in ("signing", "encryption"):
            document[section]["key_id"] = document[section]["key_id"].upper()
        rebuild(
            iso,
            key,
            replace={layout.BACKUP_INFO_PATH: yaml.safe_dump(document, sort_keys=False).encode()},
            edit_manifest=_key_ids_upper_case,
        )
    report = validate(str(folder), demo_set.trusted, PASSPHRASE, deep=True)
    assert report.passed and report.problems == [], report.to_text()
    items, data_key = set_items(folder)
    assert any(i.encryption for i in items)
    restore_files(items, TargetRoot(str(tmp_path / "node")), data_key)


def _key_ids_upper_case(manifest: dict[str, Any]) -> None:
    for entry in manifest["files"]:
        if entry.get("encryption"):
            entry["encryption"]["key_id"] = entry["encryption"]["key_id"].upper()


def test_a_set_holding_only_the_fields_the_format_names_is_recovered(
    demo_set: DemoSet, tmp_path: Path, workspace: Path, fresh_database_url: str
) -> None:
    folder = copy_set(demo_set.output, tmp_path / "spec-only")
    texts = spec_only(demo_texts(demo_set.env))
    key = load_signing_key(demo_set.key_path)
    for iso in sorted(folder.glob("*.iso")):
        with IsoReader(str(iso)) as reader:
            paths = [e.path for e in reader.manifest.files if e.type == "file" and not e.encryption]
            current = {p: reader.raw(p) for p in paths if p.startswith("data/") and p != layout.DATA_KEY_PATH}
        drop = {path for path in current if path.startswith("data/system/nodes/")}
        new = {path: texts.get(env_path(path), "").encode() for path in current if path not in drop}
        replace = {path: data for path, data in new.items() if data and data != current[path]}
        if drop:
            unlisted = "DELETE FROM files WHERE path LIKE 'data/system/nodes/%'"
            replace[layout.INDEX_DB_PATH] = edit_index(index_bytes(iso), unlisted)
        if replace:
            rebuild(iso, key, replace=replace, drop=drop)
    stripped = dataclasses.replace(demo_set, output=folder)
    setup, report = recovered(stripped, tmp_path / "restore", workspace, fresh_database_url)
    assert report.passed, report.to_text()
    (folder_left,) = report.problems  # the image keeps data/system/nodes/ as an empty, unlisted folder
    assert folder_left.severity == "warning" and folder_left.path == "data/system/nodes"
    source = digests(demo_set.env)
    restored = restored_tree(setup.plan, tmp_path / "gathered")
    data = [p for p in source if p.startswith("volumes/") and "/files/" in p]
    assert data and all(restored.get(p) == source[p] for p in data), "volume data restored byte for byte"
