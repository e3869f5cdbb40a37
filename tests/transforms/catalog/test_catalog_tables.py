"""Catalog tables from real ISOs: the column-wise manifest equals the reader's, and bad input is refused."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pyarrow as pa
import pytest

from omni_recovery.backupset.index_db import RecoveryIndex
from omni_recovery.backupset.reader import IsoReader, list_backup_set
from omni_recovery.errors import BackupSetError, UnsafePathError
from tests.catalog_fixtures import DemoSet
from tests.checker.test_fidelity_checks import MALFORMED
from transforms import catalog_tables as ct

ISO = "t9_volume-data_001.iso"


def manifest_bytes(files: list[dict[str, Any]], **head: object) -> bytes:
    """A manifest of set t9's first volume-data ISO listing `files` (`head` overrides its fields)."""
    doc = {
        "format": "omnicloud-backup/1",
        "backup_set_id": "t9",
        "kind": "volume-data",
        "sequence": 1,
        "created_at": "2026-11-20T02:00:00Z",
        "files": files,
    }
    doc.update(head)
    return json.dumps(doc).encode()


def _file(path: str = "data/volumes/a/v/files/x", **extra: object) -> dict:
    return {"path": path, "size": 3, "sha256": "a" * 64, "mode": 33188, "component": "volume:a/v", **extra}


def test_manifest_table_equals_the_readers_parse_of_every_demo_iso(demo_set: DemoSet) -> None:
    for member in list_backup_set(str(demo_set.output)):
        with IsoReader(member.url) as reader:
            table = ct.manifest_table(reader.manifest_bytes, iso=reader.name)
            entries = reader.manifest.files
        assert table.schema.remove_metadata() == ct.MANIFEST_SCHEMA
        rows = table.to_pylist()
        assert len(rows) == len(entries)
        for row, entry in zip(rows, entries, strict=True):
            assert (row["path"], row["type"], row["size"], row["sha256"], row["mode"]) == (
                entry.path,
                entry.type,
                entry.size,
                entry.sha256,
                entry.mode,
            )
            assert row["component_id"] == entry.component and row["target"] == entry.target
            assert row["encrypted"] == (entry.encryption is not None)
            if entry.chunk is not None:
                assert (row["chunk_of"], row["chunk_index"], row["chunk_count"]) == (
                    entry.chunk.chunk_of,
                    entry.chunk.chunk_index,
                    entry.chunk.chunk_count,
                )
            if entry.encryption is not None:
                assert json.loads(row["encryption"])["nonce"] == entry.encryption.nonce
        assert table.schema.metadata[b"kind"].decode() == member.name.kind


def test_a_pretty_printed_manifest_parses_the_same() -> None:
    compact = ct.manifest_table(manifest_bytes([_file(), _file(path="data/volumes/a/v/files/y")]), iso=ISO)
    doc = json.loads(manifest_bytes([_file(), _file(path="data/volumes/a/v/files/y")]))
    pretty = ct.manifest_table(json.dumps(doc, indent=2).encode(), iso=ISO)
    assert pretty.equals(compact)


def test_dir_symlink_and_empty_manifests() -> None:
    table = ct.manifest_table(
        manifest_bytes(
            [
                {
                    "path": "data/volumes/a/v/files/d",
                    "type": "dir",
                    "size": 0,
                    "mode": 16877,
                    "component": None,
                },
                {
                    "path": "data/volumes/a/v/files/l",
                    "type": "symlink",
                    "size": 0,
                    "mode": 41471,
                    "target": "d",
                    "component": None,
                    "mtime": "2026-01-02T03:04:05Z",
                },
            ]
        ),
        iso=ISO,
    )
    assert table.column("type").to_pylist() == ["dir", "symlink"]
    assert table.column("mtime")[1].as_py().year == 2026
    assert ct.manifest_table(manifest_bytes([]), iso=ISO).num_rows == 0


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"{not json", "not valid JSON"),
        (manifest_bytes([_file(size="3")]), "not valid JSON"),
        (manifest_bytes([_file(), _file()]), "listed twice"),
        (manifest_bytes([_file(sha256="XYZ")]), "sha256"),
        (manifest_bytes([_file(path="data/../etc/passwd")]), "'..'"),
        (manifest_bytes([_file(path="/abs")]), "absolute"),
        (manifest_bytes([_file(type="device")]), "type must be"),
        (manifest_bytes([_file()], format="other/1"), "format must be"),
        (manifest_bytes([_file()], kind="weird"), "unknown kind"),
        (manifest_bytes([_file(path="metadata/manifest.json")]), "must not list"),
        (manifest_bytes([_file(mode=-1)]), "mode must be"),
        (
            manifest_bytes(
                [
                    _file(
                        path="data/volumes/a/v/files/l",
                        type="symlink",
                        size=0,
                        sha256=None,
                        target="../../../x",
                    )
                ]
            ),
            "leaves its volume",
        ),
        (
            manifest_bytes([_file(chunk_of="data/volumes/a/v/files/big", chunk_index=2, chunk_count=2)]),
            "a part needs",
        ),
    ],
)
def test_bad_manifests_are_refused_naming_the_iso(data: bytes, expected: str) -> None:
    with pytest.raises(BackupSetError) as caught:
        ct.manifest_table(data, iso=ISO)
    assert ISO in str(caught.value)
    assert expected in str(caught.value)


def test_unsafe_path_is_an_unsafe_path_error() -> None:
    with pytest.raises(UnsafePathError):
        ct.manifest_table(manifest_bytes([_file(path="data//x")]), iso=ISO)


def test_files_catalog_joins_extents_and_refuses_a_missing_file(demo_set: DemoSet) -> None:
    member = list_backup_set(str(demo_set.output))[0]
    with IsoReader(member.url) as reader:
        manifest = ct.manifest_table(reader.manifest_bytes, iso=reader.name)
        records = ct.directory_records_table(
            map(dataclasses.asdict, reader.listing.values()), iso=reader.name
        )
        listing = reader.listing
    files = ct.files_catalog({reader.name: manifest}, {reader.name: records})
    assert files.num_rows == manifest.num_rows
    for row in files.to_pylist():
        entry = listing[row["path"]]
        assert row["extent_offset"] == entry.offset
    without = records.filter(pa.compute.not_equal(records.column("path"), "recovery.log"))
    with pytest.raises(BackupSetError, match=r"recovery\.log"):
        ct.files_catalog({reader.name: manifest}, {reader.name: without})


def test_index_catalogs_drop_repeats_and_keep_system_core_first() -> None:
    from omni_recovery.backupset.index_db import Component, Dependency

    core = RecoveryIndex(
        components=[Component("volume:a/v", "volume", "a/v", None, "critical", "volume-data", {"w": 1})],
        dependencies=[Dependency("application:a", "volume:a/v", "hard")],
    )
    volume = RecoveryIndex(
        components=[Component("volume:a/v", "volume", "a/v", None, None, "volume-data", {})],
        dependencies=[Dependency("application:a", "volume:a/v", "hard")],
    )
    per_iso = {
        "s_volume-data_001.iso": ct.index_tables(volume, backup_set_id="s"),
        "s_system-core_001.iso": ct.index_tables(core, backup_set_id="s"),
    }
    components = ct.components_catalog({k: v["components"] for k, v in per_iso.items()})
    assert components.num_rows == 1
    assert components.column("priority")[0].as_py() == "critical"
    assert ct.dependencies_catalog({k: v["dependencies"] for k, v in per_iso.items()}).num_rows == 1
    assert ct.hardware_catalog({}).num_rows == 0


def test_format_1_1_owners_links_and_holes_become_columns() -> None:
    owned = _file(uid=999, gid=998, user="postgres", group="postgres", mtime="2023-11-14T22:13:20.123456789Z")
    sparse = _file(path="data/volumes/a/v/files/disk", size=8, sparse=[[0, 3], [10, 5]], logical_size=20)
    sparse["logical_sha256"] = "b" * 64
    link = {
        "path": "data/volumes/a/v/files/y",
        "size": 0,
        "mode": 33188,
        "component": None,
        "hardlink": owned["path"],
    }
    table = ct.manifest_table(manifest_bytes([owned, sparse, link], format="omnicloud-backup/1.1"), iso=ISO)
    rows = {row["path"]: row for row in table.to_pylist()}
    first, disk, second = rows[owned["path"]], rows[sparse["path"]], rows[link["path"]]
    assert (first["uid"], first["gid"], first["owner_user"], first["owner_group"]) == (
        999,
        998,
        "postgres",
        "postgres",
    )
    assert first["mtime"].microsecond == 123456 and not first["sparse"]
    assert disk["sparse"] and disk["logical_size"] - disk["size"] == 12
    assert (second["hardlink"], second["sha256"], second["size"]) == (owned["path"], None, 0)


@pytest.mark.parametrize(("entry", "message"), [case for case in MALFORMED if "xattrs" not in case[0]])
def test_the_catalog_refuses_the_1_1_fields_the_reader_refuses(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(BackupSetError, match=message) as info:
        ct.manifest_table(manifest_bytes([entry], format="omnicloud-backup/1.1"), iso=ISO)
    assert info.value.iso == ISO
