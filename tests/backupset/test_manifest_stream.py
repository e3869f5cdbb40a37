"""The streamed manifest (planning's) yields what parse_manifest lists, whatever the blocks it is read
in, and refuses what parse_manifest refuses, naming the ISO."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from omni_recovery.backupset.manifest import Manifest, ManifestEntry, parse_manifest
from omni_recovery.backupset.manifest_stream import iter_manifest_entries
from omni_recovery.errors import BackupSetError

SHA = "ab" * 32


def manifest_bytes(count: int) -> bytes:
    files = [ManifestEntry("data/volumes/app/vol/files", 0, 0o40755, "app", "dir")]
    files += [
        ManifestEntry(f"data/volumes/app/vol/files/é{i:04}.txt", i, 0o100644, "app", "file", SHA)
        for i in range(count)
    ]
    manifest = Manifest("set-1", "volume-data", 1, "2026-12-07T00:00:00Z", files)
    return manifest.to_bytes()


def blocks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 3, 64, 1 << 20])
def test_streamed_entries_are_the_parsed_ones(size: int) -> None:
    data = manifest_bytes(40)
    assert (
        list(iter_manifest_entries(blocks(data, size), iso="x.iso"))
        == parse_manifest(data, iso="x.iso").files
    )


def test_the_manifest_fields_come_in_any_order_and_spacing() -> None:
    document = json.loads(manifest_bytes(3))
    files = document.pop("files")
    data = json.dumps({"files": files, **document}, indent=2).encode()
    assert len(list(iter_manifest_entries(blocks(data, 5), iso="x.iso"))) == 4


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[:-1],  # cut short
        lambda d: d + b"{}",  # something after the object
        lambda d: d.replace(b'"kind":"volume-data"', b'"kind":"other"'),
        lambda d: d.replace(b'"size":3,', b'"size":-3,'),
        lambda d: d.replace(b"]", b",]"),
        lambda d: d.replace("é".encode(), b"\xff"),
    ],
)
def test_a_bad_manifest_is_refused_naming_its_iso(damage: Callable[[bytes], bytes]) -> None:
    data = damage(manifest_bytes(5))
    with pytest.raises(BackupSetError) as streamed:
        list(iter_manifest_entries(blocks(data, 7), iso="x.iso"))
    with pytest.raises(BackupSetError):
        parse_manifest(data, iso="x.iso")
    assert "x.iso" in str(streamed.value)
