"""demo-env → backup create → read back every file: bytes, modes and names equal; keys and signatures hold."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections import defaultdict
from pathlib import Path

import pycdlib
import pytest

from omni_recovery.backupset import keys, layout
from omni_recovery.backupset.reader import DataKey, IsoReader, list_backup_set, unlock_data_key
from omni_recovery.backupset.signing import TrustedSigners
from omni_recovery.envstate.model import env_path, walk_environment
from omni_recovery.errors import BackupSetError, IntegrityError, PassphraseError, SignatureError
from tests.backupset.conftest import PASSPHRASE, DemoSet


def open_set(location: Path) -> list[IsoReader]:
    return [IsoReader(m.url) for m in list_backup_set(str(location))]


def restore_all(
    readers: list[IsoReader], data_key: DataKey
) -> dict[str, tuple[str, bytes | str | None, int]]:
    """env path → (type, content or target, mode), chunks reassembled across ISOs."""
    restored: dict[str, tuple[str, bytes | str | None, int]] = {}
    parts: dict[str, list[tuple[int, bytes, int]]] = defaultdict(list)
    for reader in readers:
        for entry in reader.manifest.files:
            if entry.path.startswith("metadata/") or entry.path in (
                layout.RECOVERY_LOG_PATH,
                layout.DATA_KEY_PATH,
            ):
                continue
            if entry.type != "file":
                restored[env_path(entry.path)] = (entry.type, entry.target, entry.mode)
                continue
            content = b"".join(reader.plaintext(entry, data_key))
            if entry.chunk:
                parts[entry.chunk.chunk_of].append((entry.chunk.chunk_index, content, entry.mode))
                assert hashlib.sha256(content).hexdigest() == entry.sha256
            else:
                restored[env_path(entry.path)] = ("file", content, entry.mode)
    for logical, pieces in parts.items():
        pieces.sort()
        assert [p[0] for p in pieces] == list(range(len(pieces)))
        restored[env_path(logical)] = ("file", b"".join(p[1] for p in pieces), pieces[0][2])
    return restored


def test_every_file_reads_back_equal(demo_set: DemoSet):
    readers = open_set(demo_set.output)
    core = next(r for r in readers if r.manifest.kind == "system-core")
    restored = restore_all(readers, unlock_data_key(core, PASSPHRASE))
    source = {f.relpath: f for f in walk_environment(demo_set.env)}
    assert set(restored) == set(source)
    for rel, env_file in source.items():
        kind, content, mode = restored[rel]
        assert kind == env_file.type, rel
        assert mode == env_file.mode, rel
        if kind == "file":
            assert content == env_file.abspath.read_bytes(), rel
        elif kind == "symlink":
            assert content == os.readlink(env_file.abspath), rel
    assert any(len(r.manifest.files) and any(e.chunk for e in r.manifest.files) for r in readers)
    assert any(e.encryption for r in readers for e in r.manifest.files)
    assert any(e.type == "dir" for r in readers for e in r.manifest.files)


def test_set_shape_follows_the_format(demo_set: DemoSet):
    readers = open_set(demo_set.output)
    kinds = [r.manifest.kind for r in readers]
    for kind, (low, high) in layout.KIND_COUNTS.items():
        assert low <= kinds.count(kind) <= (high or 99), kind
    assert kinds.count("volume-data") >= 2, "the small max ISO size must spread volumes over several ISOs"
    info = readers[0].backup_info
    assert [m.name for m in info.iso_set] == [os.path.basename(r.url) for r in readers]
    for reader in readers:
        assert reader.backup_info_bytes == readers[0].backup_info_bytes
        assert reader.verify_signatures(demo_set.trusted) == info.signing["key_id"]
        listed = {e.path for e in reader.manifest.files if e.type != "dir"} | layout.UNLISTED_PATHS
        present = {p for p, e in reader.listing.items() if e.type != "dir"}
        assert present == listed, reader.name
        index = reader.index()
        assert {p for p, _ in index.files} == {e.path for e in reader.manifest.files} - {
            layout.BACKUP_INFO_PATH,
            layout.INDEX_DB_PATH,
            layout.RECOVERY_LOG_PATH,
        }
        assert all(os.path.getsize(r.url.removeprefix("file://")) <= 1536 * 1024 for r in [reader])
    core_index = next(r for r in readers if r.manifest.kind == "system-core").index()
    assert {c.kind for c in core_index.components} >= {
        "director",
        "orchestrator",
        "application",
        "volume",
        "service",
        "system",
        "network",
    }


def test_images_read_with_pycdlib_rock_ridge_and_joliet_facades(demo_set: DemoSet):
    for member in list_backup_set(str(demo_set.output)):
        iso = pycdlib.PyCdlib()
        iso.open(member.url.removeprefix("file://"))
        try:
            rr_files = {
                os.path.join(root, f).lstrip("/") for root, _, files in iso.walk(rr_path="/") for f in files
            }
            joliet_dirs = [root for root, _, _ in iso.walk(joliet_path="/")]
            with IsoReader(member.url) as reader:
                expected = {p for p, e in reader.listing.items() if e.type == "file"}
                assert expected <= rr_files
                entry = reader.manifest_entries[layout.BACKUP_INFO_PATH]
                out = __import__("io").BytesIO()
                iso.get_file_from_iso_fp(out, rr_path="/" + layout.BACKUP_INFO_PATH)
                assert hashlib.sha256(out.getvalue()).hexdigest() == entry.sha256
            assert "/metadata" in joliet_dirs
        finally:
            iso.close()


def test_images_list_and_extract_with_libarchive(
    demo_set: DemoSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    try:  # libarchive-c binds the system's libarchive, the reader behind bsdtar
        import libarchive
    except (ImportError, OSError, AttributeError) as exc:
        pytest.skip(f"libarchive is not available here: {exc}")
    member = next(m for m in list_backup_set(str(demo_set.output)) if m.name.kind == "volume-data")
    with IsoReader(member.url) as reader:
        expected = {e.path: e for e in reader.manifest.files if e.type == "file"}
    monkeypatch.chdir(tmp_path)
    libarchive.extract_file(member.url.removeprefix("file://"))
    for path, entry in expected.items():
        data = (tmp_path / path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry.sha256, path
        assert stat.S_IMODE((tmp_path / path).stat().st_mode) == stat.S_IMODE(entry.mode), path


def test_wrong_passphrase_is_a_clear_error(demo_set: DemoSet):
    readers = open_set(demo_set.output)
    core = next(r for r in readers if r.manifest.kind == "system-core")
    with pytest.raises(
        PassphraseError, match=r"system-core_001\.iso: data/keys/data-key\.json: .*passphrase"
    ):
        unlock_data_key(core, b"not the passphrase")


def test_unknown_signer_is_refused(demo_set: DemoSet, tmp_path: Path):
    from omni_recovery.backupset.signing import generate_signing_key

    other, _ = generate_signing_key(tmp_path / "other.key")
    reader = open_set(demo_set.output)[0]
    with pytest.raises(SignatureError, match=r"system-core_001\.iso: .*signer.pub: signer .* is not among"):
        reader.verify_signatures(TrustedSigners.from_specs([other]))


def test_flipped_byte_names_iso_and_path(demo_set: DemoSet, tmp_path: Path):
    copy = tmp_path / "set"
    shutil.copytree(demo_set.output, copy)
    member = next(m for m in list_backup_set(str(copy)) if m.name.kind == "volume-data")
    with IsoReader(member.url) as reader:
        entry = next(
            e
            for e in reader.manifest.files
            if e.type == "file" and e.size > 100 and e.path.startswith("data/")
        )
        offset = reader.listing[entry.path].offset
    path = member.url.removeprefix("file://")
    with open(path, "r+b") as fh:
        fh.seek(offset + 50)
        byte = fh.read(1)
        fh.seek(offset + 50)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with IsoReader(member.url) as reader, pytest.raises(IntegrityError) as info:
        b"".join(reader.stream(reader.manifest_entries[entry.path]))
    assert info.value.iso == member.name.filename and info.value.path == entry.path
    assert "sha256" in str(info.value)


def test_encrypted_file_decrypts_only_at_its_own_path(demo_set: DemoSet):
    readers = open_set(demo_set.output)
    key = unlock_data_key(next(r for r in readers if r.manifest.kind == "system-core"), PASSPHRASE)
    app_iso = next(r for r in readers if r.manifest.kind == "application-definition")
    first, second = [e for e in app_iso.manifest.files if e.encryption][:2]
    assert first.encryption is not None
    stored = b"".join(app_iso.stream(first))
    nonce = keys.unb64(first.encryption.nonce, what="nonce", size=keys.NONCE_SIZE)
    assert b"".join(keys.open_chunks(keys.Opener(key.key, nonce, first.path), [stored]))
    with pytest.raises(IntegrityError, match="moved to another path"):
        b"".join(keys.open_chunks(keys.Opener(key.key, nonce, second.path), [stored]))


def test_list_backup_set_leaves_other_files_alone_and_refuses_misnamed_isos(
    demo_set: DemoSet, tmp_path: Path
):
    folder = tmp_path / "set"
    shutil.copytree(demo_set.output, folder)
    (folder / "SHA256SUMS").write_text("checksums")
    (folder / "docs").mkdir()
    assert [m.name for m in list_backup_set(str(folder))] == [
        m.name for m in list_backup_set(str(demo_set.output))
    ]
    (folder / "copy of t1.iso").write_bytes(b"")
    with pytest.raises(BackupSetError) as caught:
        list_backup_set(str(folder))
    assert "copy of t1.iso" in str(caught.value)
