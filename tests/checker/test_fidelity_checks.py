"""Validation of the 1.1 fields: a sparse file's whole digest, hard links that lead nowhere, and
manifests of either version read by the same rules."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from omni_recovery.backupset import layout
from omni_recovery.backupset.manifest import parse_manifest
from omni_recovery.backupset.signing import load_signing_key
from omni_recovery.errors import BackupSetError
from omni_recovery.validate import problems as p
from tests.backupset.conftest import DemoSet
from tests.checker.tamper import copy_set, iso_file, rebuild
from tests.checker.test_corruption_matrix import data_file, only, run

# A 64 KiB file with two data ranges: 3 bytes at 0 and 5 bytes at 40000.
SPARSE_PATH = "data/volumes/extra/disk/files/disk.img"
STORED = b"abc" + b"defgh"
RANGES = [[0, 3], [40000, 5]]


def whole_file() -> bytes:
    data = bytearray(1 << 16)
    data[0:3], data[40000:40005] = b"abc", b"defgh"
    return bytes(data)


def add_sparse(folder: Path, demo: DemoSet, logical_sha256: str) -> None:
    fields = {"sparse": RANGES, "logical_size": 1 << 16, "logical_sha256": logical_sha256, "component": None}
    rebuild(
        iso_file(folder, "volume-data"), load_signing_key(demo.key_path), add={SPARSE_PATH: (STORED, fields)}
    )


def test_a_sparse_file_validates_against_its_whole_digest(demo_set: DemoSet, tmp_path: Path):
    folder = copy_set(demo_set.output, tmp_path / "set")
    add_sparse(folder, demo_set, hashlib.sha256(whole_file()).hexdigest())
    report = run(folder, demo_set, deep=True)
    assert report.passed, report.to_text()


def test_a_sparse_file_whose_ranges_do_not_make_its_whole_fails_deep_validation(
    demo_set: DemoSet, tmp_path: Path
):
    folder = copy_set(demo_set.output, tmp_path / "set")
    wrong = hashlib.sha256(whole_file()[:-1] + b"x").hexdigest()
    add_sparse(folder, demo_set, wrong)
    assert run(folder, demo_set).passed  # shallow: the stored bytes are as listed
    problem = only(run(folder, demo_set, deep=True), p.FILE_HASHES, path=SPARSE_PATH)
    assert problem.expected == wrong and problem.found == hashlib.sha256(whole_file()).hexdigest()


def test_a_hard_link_to_no_stored_file_fails_validation(demo_set: DemoSet, tmp_path: Path):
    folder = copy_set(demo_set.output, tmp_path / "set")
    iso = iso_file(folder, "volume-data")
    first = data_file(iso)
    link, dangling = first + ".second-name", first + ".gone"

    def add_links(manifest: dict[str, Any]) -> None:
        base = {"size": 0, "mode": 0o100644, "component": None}
        manifest["files"] += [
            {**base, "path": link, "hardlink": first},
            {**base, "path": dangling, "hardlink": dangling + "x"},
        ]

    rebuild(iso, load_signing_key(demo_set.key_path), edit_manifest=add_links)
    report = run(folder, demo_set)
    assert not [pr for pr in report.problems if pr.path == link], report.to_text()  # manifest-only: fine
    problem = only(report, p.HARDLINKS, path=dangling, iso=iso.name)
    assert "no file stored in the set" in problem.message


def manifest(files: list[dict[str, Any]], version: str = layout.FORMAT_1_1) -> bytes:
    document = {"format": version, "backup_set_id": "s", "kind": "volume-data", "sequence": 1}
    return json.dumps({**document, "created_at": "2026-01-01T00:00:00Z", "files": files}).encode()


FILE = {
    "path": "data/volumes/a/v/files/f",
    "size": 8,
    "sha256": "0" * 64,
    "mode": 0o100644,
    "component": None,
}
SPARSE = {**FILE, "sparse": [[0, 3], [10, 5]], "logical_size": 20, "logical_sha256": "1" * 64}
LINK = {
    "path": "data/volumes/a/v/files/g",
    "size": 0,
    "mode": 0o100644,
    "component": None,
    "hardlink": FILE["path"],
}


MALFORMED: list[tuple[dict[str, Any], str]] = [
    ({**SPARSE, "sparse": [[0, 3], [2, 5]]}, "overlaps the one before"),
    ({**SPARSE, "sparse": [[0, 3], [16, 5]]}, "leaves the 20-byte file"),
    ({**SPARSE, "sparse": [[0, 3], [10, 0]]}, "length > 0"),
    ({**SPARSE, "size": 9}, "is not the 8 bytes of its sparse ranges"),
    ({**SPARSE, "logical_size": None}, "needs logical_size"),
    ({**LINK, "sha256": "0" * 64}, "hard link entry has size 0 and no sha256"),
    ({**LINK, "hardlink": LINK["path"]}, "not itself"),
    ({**LINK, "hardlink": "../outside"}, "'..' segment"),
    ({**FILE, "uid": -1}, "uid must be an integer >= 0"),
    ({**FILE, "xattrs": {"user.x": "not base64!"}}, "is not base64"),
    ({**FILE, "xattrs": {"nonamespace": "AA=="}}, "namespaced name"),
]


@pytest.mark.parametrize(("entry", "message"), MALFORMED)
def test_malformed_1_1_fields_are_refused_naming_the_path(entry: dict[str, Any], message: str):
    with pytest.raises(BackupSetError, match=message) as info:
        parse_manifest(manifest([entry]), iso="x.iso")
    assert info.value.iso == "x.iso"


def test_both_versions_read_and_a_version_1_manifest_writes_back_unchanged():
    v1 = manifest([FILE], layout.FORMAT)
    parsed = parse_manifest(v1, iso="x.iso")
    assert parsed.format == layout.FORMAT and parsed.files[0].attributes is None
    assert json.loads(parsed.to_bytes()) == json.loads(v1)
    v11 = manifest([{**SPARSE, "uid": 999, "gid": 998, "user": "pg", "xattrs": {"user.x": "AAE="}}, LINK])
    again = parse_manifest(parse_manifest(v11, iso="x.iso").to_bytes(), iso="x.iso")
    sparse, link = again.files
    assert sparse.attributes is not None and sparse.attributes.sparse is not None
    assert (sparse.attributes.uid, sparse.attributes.user, sparse.attributes.xattrs) == (
        999,
        "pg",
        (("user.x", b"\0\1"),),
    )
    assert sparse.attributes.sparse.ranges == ((0, 3), (10, 5)) and link.hardlink == FILE["path"]
    assert json.loads(again.to_bytes()) == json.loads(v11)
