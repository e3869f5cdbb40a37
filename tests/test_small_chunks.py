"""A set written with a small chunk size (4 KiB), as another writer may: documents and sealed files
are split into parts too.

Documents (e.g. a Director's state.json) are reassembled to plan the recovery, and a damaged part
is named. A sealed file larger than the chunk size is sealed whole, then split into parts:
the parts' bytes in order are the ciphertext and tag of the whole file, every part carries the
encryption of the whole (one nonce, the whole plaintext's digest and size), the associated data
is the logical path, and logical_size is plaintext_size + 16. Written by the writer, validated
deeply (each part's digest, the reassembled whole, the tag and the plaintext), restored decrypted
by restore_files and by execute-plan; a damaged part is named; parts that disagree on their
encryption are refused.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from omni_recovery.backupset import layout
from omni_recovery.backupset.keys import TAG_SIZE
from omni_recovery.backupset.reader import IsoReader
from omni_recovery.backupset.signing import load_signing_key
from omni_recovery.db.connection import connect
from omni_recovery.errors import IntegrityError
from omni_recovery.plan.generate import open_set, read_set_environment
from omni_recovery.register.catalog_sql import run_query
from omni_recovery.restorer.files import restore_files
from omni_recovery.targets.driver import TargetRoot
from omni_recovery.validate import problems as p
from omni_recovery.validate import validate
from pipelines.runner import register_isos
from tests.catalog_fixtures import scratch_settings
from tests.checker.tamper import copy_set, flip_byte, rebuild
from tests.demo_fixtures import PASSPHRASE, SMALL_SET, DemoSet, signed_set
from tests.restorer.conftest import set_items

USERS = "data/orchestrators/orch-3/db/users.jsonl"  # 9 KiB in the demo: three parts of 4 KiB


@pytest.fixture(scope="module")
def sealed_set(demo_env: Path, tmp_path_factory: pytest.TempPathFactory) -> DemoSet:
    options = dataclasses.replace(SMALL_SET, backup_set_id="sealed", chunk_size=4096)
    return signed_set(demo_env, tmp_path_factory.mktemp("sealed-chunks"), options)


def _parts(location: Path, logical: str) -> list[tuple[Path, Any]]:
    found = []
    for iso in sorted(location.glob("*.iso")):
        with IsoReader(str(iso)) as reader:
            found += [(iso, e) for e in reader.manifest.files if e.chunk and e.chunk.chunk_of == logical]
    return sorted(found, key=lambda item: item[1].chunk.chunk_index)


def test_the_writer_seals_a_large_sensitive_file_whole_then_splits_it(sealed_set: DemoSet) -> None:
    parts = _parts(sealed_set.output, USERS)
    plaintext = (sealed_set.env / "orchestrators/orch-3/db/users.jsonl").read_bytes()
    assert len(parts) == 3
    encryptions = {entry.encryption for _, entry in parts}
    assert len(encryptions) == 1 and None not in encryptions
    (encryption,) = encryptions
    first = parts[0][1].chunk
    assert encryption.plaintext_size == len(plaintext)
    assert first.logical_size == len(plaintext) + TAG_SIZE == sum(e.size for _, e in parts)
    assert [e.path for _, e in parts] == [layout.chunk_part_path(USERS, i) for i in range(3)]


def test_deep_validation_authenticates_the_parts_as_one_file(sealed_set: DemoSet) -> None:
    report = validate(str(sealed_set.output), sealed_set.trusted, PASSPHRASE, deep=True)
    assert report.passed and report.problems == [], report.to_text()

    without_key = validate(str(sealed_set.output), sealed_set.trusted, None, deep=True)
    notes = [pr for pr in without_key.problems if pr.check == p.ENCRYPTION]
    sealed_files = 11  # every sensitive file of the demo, chunked or not
    assert sum(int(str(n.found).split()[0]) for n in notes) == sealed_files


def test_restore_files_decrypts_the_parts_in_order(sealed_set: DemoSet, tmp_path: Path) -> None:
    items, key = set_items(sealed_set.output)
    assert any(i.encryption and i.chunk_of for i in items)
    for parallel in (1, 2):
        root = tmp_path / f"p{parallel}"
        restore_files(items, TargetRoot(str(root)), key, parallel=parallel, chunk_check="parts")
        for relpath in ("orchestrators/orch-3/db/users.jsonl", "orchestrators/orch-1/db/users.jsonl"):
            assert (root / relpath).read_bytes() == (sealed_set.env / relpath).read_bytes()


def test_a_damaged_part_is_named_and_nothing_is_restored_from_it(sealed_set: DemoSet, tmp_path: Path) -> None:
    damaged = copy_set(sealed_set.output, tmp_path / "damaged")
    iso, entry = _parts(damaged, USERS)[1]
    flip_byte(iso, entry.path, at=10)

    report = validate(str(damaged), sealed_set.trusted, PASSPHRASE, deep=True)
    assert not report.passed
    hashes = [pr for pr in report.problems if pr.check == p.FILE_HASHES]
    assert [(pr.iso, pr.path) for pr in hashes] == [(iso.name, entry.path)]
    assert any(pr.check == p.ENCRYPTION and pr.path == USERS for pr in report.problems)

    items, key = set_items(damaged)
    with pytest.raises(IntegrityError) as caught:
        restore_files(items, TargetRoot(str(tmp_path / "node")), key, parallel=1)
    assert (caught.value.iso, caught.value.path) == (iso.name, entry.path)
    assert not (tmp_path / "node/orchestrators/orch-3/db/users.jsonl").exists()


def test_parts_that_disagree_on_their_encryption_are_refused(sealed_set: DemoSet, tmp_path: Path) -> None:
    edited = copy_set(sealed_set.output, tmp_path / "edited")
    iso, entry = _parts(edited, USERS)[2]

    def other_nonce(manifest: dict[str, Any]) -> None:
        for listed in manifest["files"]:
            if listed["path"] == entry.path:
                listed["encryption"]["nonce"] = "AAAAAAAAAAAAAAAA"

    rebuild(iso, load_signing_key(sealed_set.key_path), edit_manifest=other_nonce)
    report = validate(str(edited), sealed_set.trusted, PASSPHRASE, deep=True)
    disagreeing = [pr for pr in report.problems if "disagree on their encryption" in pr.message]
    assert disagreeing and all(pr.blocking for pr in disagreeing)


def test_execute_plan_restores_a_set_with_sealed_parts(
    sealed_set: DemoSet, tmp_path: Path, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_recovery import recovered, restored_tree

    monkeypatch.setenv("OMNI_RECOVERY_DATABASE_URL", fresh_database_url)
    setup, _ = recovered(sealed_set, tmp_path / "restore", tmp_path / "ws", fresh_database_url, reverify=True)
    restored_tree(setup.plan, tmp_path / "gathered")
    for users in sorted(sealed_set.env.glob("orchestrators/*/db/users.jsonl")):
        relpath = users.relative_to(sealed_set.env)
        assert (tmp_path / "gathered" / relpath).read_bytes() == users.read_bytes()


def test_documents_split_into_parts_are_read_whole_to_plan(sealed_set: DemoSet, tmp_path: Path) -> None:
    state = "data/directors/dir-1/state.json"
    parts = _parts(sealed_set.output, state)
    assert len(parts) > 1
    with open_set(str(sealed_set.output)) as readers:
        source = read_set_environment(readers)
    assert (
        source.documents["directors/dir-1/state.json"]
        == (sealed_set.env / "directors/dir-1/state.json").read_bytes()
    )

    damaged = copy_set(sealed_set.output, tmp_path / "damaged")
    iso, entry = _parts(damaged, state)[-1]
    flip_byte(iso, entry.path)
    with open_set(str(damaged)) as readers, pytest.raises(IntegrityError) as caught:
        read_set_environment(readers)
    assert (caught.value.iso, caught.value.path) == (iso.name, entry.path)


def test_the_catalog_holds_chunked_configuration_files_whole(
    sealed_set: DemoSet, fresh_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    state = "data/directors/dir-1/state.json"
    assert len(_parts(sealed_set.output, state)) > 1
    with scratch_settings(tmp_path_factory, "small-chunks", fresh_database_url) as settings:
        register_isos(str(sealed_set.output), settings)
        vms = run_query(
            str(settings.catalog),
            "SELECT count(*) FROM director_vms WHERE backup_set_id = 'sealed' AND director_id = 'dir-1'",
        )[1]
    with connect(fresh_database_url) as conn:
        (value,) = conn.execute(
            "SELECT value FROM omni.configurations WHERE backup_set_id = 'sealed' AND key = %s", (state,)
        ).fetchone() or (None,)
    source = json.loads((sealed_set.env / "directors/dir-1/state.json").read_bytes())
    assert value == source  # jsonb
    assert vms == [(len(source["vms"]),)]
