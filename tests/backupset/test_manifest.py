import hashlib
import json

import pytest

from omni_recovery.backupset import layout
from omni_recovery.backupset.manifest import Chunk, Manifest, ManifestEntry, join_chunks, parse_manifest
from omni_recovery.errors import BackupSetError, UnsafePathError

SHA = "a" * 64


def manifest(*files: dict) -> bytes:
    return json.dumps(
        {
            "format": layout.FORMAT,
            "backup_set_id": "s1",
            "kind": "volume-data",
            "sequence": 1,
            "created_at": "2026-11-20T02:00:00Z",
            "files": list(files),
        }
    ).encode()


def entry(path: str, **extra) -> dict:
    return {"path": path, "size": 1, "sha256": SHA, "mode": 0o100644, "component": None, **extra}


def test_round_trip_of_every_entry_type():
    entries = [
        ManifestEntry(
            "data/volumes/a/v/files/x", 3, 0o100600, "volume:a/v", sha256=SHA, mtime="2026-11-20T02:00:00Z"
        ),
        ManifestEntry("data/volumes/a/v/files/d", 0, 0o40700, "volume:a/v", type="dir"),
        ManifestEntry("data/volumes/a/v/files/l", 0, 0o120777, "volume:a/v", type="symlink", target="x"),
        ManifestEntry(
            "data/volumes/a/v/files/big.part-00001",
            5,
            0o100644,
            "volume:a/v",
            sha256=SHA,
            chunk=Chunk("data/volumes/a/v/files/big", 1, 2, 10, SHA),
        ),
    ]
    data = Manifest("s1", "volume-data", 2, "2026-11-20T02:00:00Z", entries).to_bytes()
    parsed = parse_manifest(data, iso="s1_volume-data_002.iso")
    assert parsed.files == entries and parsed.sequence == 2


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../etc/passwd", "'..'"),
        ("/etc/passwd", "absolute"),
        ("data\\x", "backslash"),
        ("data//x", "empty"),
        ("data/./x", "'.'"),
        ("data/x\x00", "NUL"),
        ("cafe\u0301", "NFC"),
    ],
)
def test_unsafe_paths_refuse_the_whole_manifest(path, message):
    with pytest.raises(UnsafePathError, match=message) as info:
        parse_manifest(manifest(entry("data/ok"), entry(path)), iso="s1_volume-data_001.iso")
    assert info.value.iso == "s1_volume-data_001.iso"


def test_duplicated_path_is_refused():
    with pytest.raises(BackupSetError, match="data/x: path is listed twice"):
        parse_manifest(manifest(entry("data/x"), entry("data/x")), iso="i.iso")


def test_symlink_escaping_its_volume_and_entries_under_symlinks_are_refused():
    link = {
        "path": "data/volumes/a/v/files/l",
        "size": 0,
        "mode": 0o120777,
        "component": None,
        "type": "symlink",
        "target": "../../v2/files/x",
    }
    with pytest.raises(BackupSetError, match="leaves its volume"):
        parse_manifest(manifest(link), iso="i.iso")
    inside = dict(link, target="sub/x")
    with pytest.raises(BackupSetError, match="under the symlink"):
        parse_manifest(manifest(inside, entry("data/volumes/a/v/files/l/y")), iso="i.iso")


def _link(path: str, target: str) -> dict[str, object]:
    return {
        "path": f"data/volumes/a/v/files/{path}",
        "size": 0,
        "mode": 0o120777,
        "type": "symlink",
        "target": target,
    }


def test_symlink_chains_are_judged_by_where_they_lead():
    deep = _link("a/b/c/d/e/f/s", "../../../../../../z")  # files/z: inside, alone
    esc = _link("esc", "a/b/c/d/e/f/s/../../../../../../../etc/shadow")  # inside as text, not through s
    with pytest.raises(BackupSetError, match="when the symlinks it passes through are followed") as caught:
        parse_manifest(manifest(deep, esc), iso="i.iso")
    assert caught.value.path == "data/volumes/a/v/files/esc"
    loop = [_link("p", "q"), _link("q", "p")]
    with pytest.raises(BackupSetError, match="when the symlinks it passes through are followed"):
        parse_manifest(manifest(*loop), iso="i.iso")
    fine = [_link("x/up", ".."), _link("x/via", "up/x/up/y"), _link("x/sibling", "../x")]
    assert len(parse_manifest(manifest(*fine), iso="i.iso").files) == 3


def test_resolve_symlinks_walks_one_segment_at_a_time():
    links = {"f/a": "b/c", "f/b": "d", "f/d/c": "../../f/e", "f/loop": "loop"}
    assert layout.resolve_symlinks("f/a", links) == "f/e"
    assert layout.resolve_symlinks("f/loop", links) is None
    assert layout.resolve_symlinks("f/b", {"f/b": "../../x"}) is None, "above the top"
    assert layout.resolve_symlinks("f/b", {"f/b": "/etc"}) is None, "absolute"
    assert layout.resolve_symlinks("f/b", {"f/b": "c", "f/c": "/etc"}) is None, "absolute on the way"


def test_bad_fields_are_named():
    with pytest.raises(BackupSetError, match="sha256 must be 64"):
        parse_manifest(manifest(entry("data/x", sha256="zz")), iso="i.iso")
    with pytest.raises(BackupSetError, match="size must be an integer"):
        parse_manifest(manifest(entry("data/x", size=-1)), iso="i.iso")
    with pytest.raises(BackupSetError, match="not valid JSON"):
        parse_manifest(b"{", iso="i.iso")
    with pytest.raises(BackupSetError, match="must not list"):
        parse_manifest(manifest(entry(layout.MANIFEST_SIG_PATH)), iso="i.iso")


def test_chunk_part_name_must_match_its_index():
    bad = entry(
        "data/big.part-00002",
        chunk_of="data/big",
        chunk_index=1,
        chunk_count=3,
        logical_size=9,
        logical_sha256=SHA,
    )
    with pytest.raises(BackupSetError, match=r"must be named data/big\.part-00001"):
        parse_manifest(manifest(bad), iso="i.iso")


def test_other_writers_leniencies_are_read():
    raw = entry("data/x", sha256="A" * 64)
    del raw["mode"], raw["component"]
    parsed = parse_manifest(manifest(raw, {"path": "data/d", "size": 0, "type": "dir"}), iso="i.iso")
    assert parsed.files[0].sha256 == "a" * 64 and parsed.files[0].mode == 0o100644
    assert parsed.files[0].component is None and parsed.files[1].mode == 0o40755


def test_join_chunks_checks_the_whole_against_its_logical_digest_and_size() -> None:
    parts = [b"abc", b"def", b"g"]
    digest = hashlib.sha256(b"abcdefg").hexdigest()
    assert join_chunks(parts, 7, digest) == b"abcdefg"
    with pytest.raises(ValueError, match=r"its 3 parts joined hash to \w{64} \(7 bytes\)"):
        join_chunks(list(reversed(parts)), 7, digest)
    with pytest.raises(ValueError, match=r"logical_sha256 is \w{64} \(8 bytes\)"):
        join_chunks(parts, 8, digest)
