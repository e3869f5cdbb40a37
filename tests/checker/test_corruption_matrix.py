"""The corruption matrix: each case damages a copy of a good set one way, and validation must name
the fault (check, ISO, path, message), fail the set, and write nothing anywhere."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from omni_recovery.backupset import layout
from omni_recovery.backupset.reader import IsoReader
from omni_recovery.backupset.signing import generate_signing_key, load_signing_key
from omni_recovery.validate import Problem, ValidationReport, validate
from omni_recovery.validate import problems as p
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.checker.tamper import (
    copy_set,
    edit_index,
    flip_byte,
    index_bytes,
    iso_file,
    rebuild,
    replace_in_place,
)


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under `root` with its size and digest."""
    return {
        str(path.relative_to(root)): (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def run(
    folder: Path, demo_set: DemoSet, *, deep: bool = False, passphrase: bytes = PASSPHRASE
) -> ValidationReport:
    """Validate and check that nothing was written or changed in the test's folder while doing so."""
    before = snapshot(folder.parent)
    report = validate(str(folder), demo_set.trusted, passphrase, deep=deep, parallel_factor=2)
    assert snapshot(folder.parent) == before, "validation must not write or restore anything"
    return report


def only(report: ValidationReport, check: str, **where: Any) -> Problem:
    """The problem of `check` matching every field in `where` (and say what was found otherwise)."""
    matches = [
        pr
        for pr in report.problems
        if pr.check == check and all(getattr(pr, k) == v for k, v in where.items())
    ]
    assert matches, f"no {check} problem with {where}:\n{report.to_text()}"
    assert not report.passed
    assert all(pr.blocking and pr.severity == "error" for pr in matches)
    return matches[0]


@pytest.fixture
def damaged(demo_set: DemoSet, tmp_path: Path) -> Path:
    return copy_set(demo_set.output, tmp_path / "set")


def name(folder: Path, kind: str, sequence: int = 1) -> str:
    return iso_file(folder, kind, sequence).name


def data_file(iso: Path, *, encrypted: bool = False, chunked: bool = False, min_size: int = 100) -> str:
    with IsoReader(str(iso)) as reader:
        return next(
            e.path
            for e in reader.manifest.files
            if e.type == "file"
            and e.path.startswith("data/")
            and e.size >= min_size
            and (e.encryption is not None) == encrypted
            and (e.chunk is not None) == chunked
        )


# -- the good set --------------------------------------------------------------------------------


def test_the_good_set_passes_deep_validation_without_any_problem(demo_set: DemoSet, damaged: Path):
    report = run(damaged, demo_set, deep=True)
    assert report.problems == [], report.to_text()
    assert report.passed and report.backup_set_id == "t1" and len(report.isos) == len(demo_set.summary.isos)
    assert report.bytes_hashed >= demo_set.summary.data_bytes
    assert report.signer_key_id == demo_set.summary.signer_key_id
    assert report.to_text().startswith("PASSED: deep validation of backup set t1")


# -- flipped bytes -----------------------------------------------------------------------------


def test_flipped_byte_in_a_data_file_is_found_by_deep_validation(demo_set: DemoSet, damaged: Path):
    iso = iso_file(damaged, "volume-data", 3)
    path = data_file(iso)
    flip_byte(iso, path, 10)
    assert run(damaged, demo_set).passed, "the shallow checks cannot see a flipped data byte"
    problem = only(run(damaged, demo_set, deep=True), p.FILE_HASHES, iso=iso.name, path=path)
    assert "sha256 differs from the manifest" in problem.message
    assert problem.expected != problem.found and len(problem.found or "") == 64


def test_flipped_byte_in_a_chunk_part_fails_the_part_and_the_reassembled_file(
    demo_set: DemoSet, damaged: Path
):
    iso = iso_file(damaged, "volume-data", 2)
    path = data_file(iso, chunked=True)
    flip_byte(iso, path, 1000)
    report = run(damaged, demo_set, deep=True)
    only(report, p.FILE_HASHES, iso=iso.name, path=path)
    logical = path.rsplit(".part-", 1)[0]
    assert "logical_sha256" in only(report, p.CHUNK_REASSEMBLY, path=logical).message


def test_flipped_byte_in_an_encrypted_file_fails_authentication(demo_set: DemoSet, damaged: Path):
    iso = iso_file(damaged, "application-definition")
    path = data_file(iso, encrypted=True, min_size=20)
    flip_byte(iso, path, 3)
    report = run(damaged, demo_set, deep=True)
    only(report, p.FILE_HASHES, iso=iso.name, path=path)
    assert "fails authentication" in only(report, p.ENCRYPTION, iso=iso.name, path=path).message


def test_flipped_byte_in_manifest_json_breaks_its_signature(demo_set: DemoSet, damaged: Path):
    iso = iso_file(damaged, "director-state")
    with IsoReader(str(iso)) as reader:
        entry = next(e for e in reader.manifest.files if e.path.startswith("data/"))
    assert entry.sha256 is not None
    digit = "0" if entry.sha256[0] != "0" else "1"
    replace_in_place(iso, layout.MANIFEST_PATH, entry.sha256.encode(), (digit + entry.sha256[1:]).encode())
    problem = only(run(damaged, demo_set), p.SIGNATURES, iso=iso.name, path=layout.MANIFEST_PATH)
    assert "manifest.json.sig does not verify over metadata/manifest.json" in problem.message


def test_flipped_byte_in_backup_info_breaks_its_signature_hash_and_agreement(
    demo_set: DemoSet, damaged: Path
):
    iso = iso_file(damaged, "orchestrator-state")
    replace_in_place(iso, layout.BACKUP_INFO_PATH, b"omnicloud_version: 4", b"omnicloud_version: 5")
    report = run(damaged, demo_set)
    assert "backup_info.yaml.sig does not verify" in (
        only(report, p.SIGNATURES, iso=iso.name, path=layout.BACKUP_INFO_PATH).message
    )
    only(report, p.METADATA_INTEGRITY, iso=iso.name, path=layout.BACKUP_INFO_PATH)
    only(report, p.BACKUP_INFO_CONSISTENT, iso=iso.name, path=layout.BACKUP_INFO_PATH)


def test_flipped_byte_in_a_signature(demo_set: DemoSet, damaged: Path):
    iso = iso_file(damaged, "network-configuration")
    flip_byte(iso, layout.MANIFEST_SIG_PATH, 5)
    report = run(damaged, demo_set)
    problem = only(report, p.SIGNATURES, iso=iso.name, path=layout.MANIFEST_PATH)
    assert "does not verify" in problem.message
    assert {pr.iso for pr in report.blocking} == {iso.name}, report.to_text()


# -- whole ISOs ---------------------------------------------------------------------------------


def test_truncated_iso(demo_set: DemoSet, damaged: Path):
    iso = iso_file(damaged, "volume-data", 4)
    os.truncate(iso, iso.stat().st_size - 6000)
    problem = only(run(damaged, demo_set), p.IMAGE_STRUCTURE, iso=iso.name)
    assert "truncated" in problem.message


def test_missing_iso(demo_set: DemoSet, damaged: Path):
    iso = iso_file(damaged, "volume-data", 3)
    iso.unlink()
    report = run(damaged, demo_set)
    problem = only(report, p.SET_COMPLETENESS, iso=iso.name)
    assert "missing from the set folder" in problem.message and problem.found == "missing"
    assert "gaps" in only(report, p.SEQUENCE).message


def test_extra_iso(demo_set: DemoSet, damaged: Path):
    extra = damaged / "t1_volume-data_005.iso"
    shutil.copy(iso_file(damaged, "volume-data", 4), extra)
    report = run(damaged, demo_set)
    assert "not named in iso_set" in only(report, p.SET_COMPLETENESS, iso=extra.name).message
    only(report, p.IDENTITY, iso=extra.name, path=layout.MANIFEST_PATH)


def test_isos_of_two_sets(demo_set: DemoSet, damaged: Path, other_set: Path):
    stranger = iso_file(other_set, "director-state")
    shutil.copy(stranger, damaged / stranger.name)
    report = run(damaged, demo_set)
    problem = only(report, p.SET_MEMBERSHIP, iso=stranger.name)
    assert "another backup set (t2)" in problem.message and problem.expected == "t1"
    assert report.backup_set_id == "t1"


def test_signature_by_an_untrusted_key(demo_set: DemoSet, damaged: Path, tmp_path: Path):
    other_id, _ = generate_signing_key(tmp_path / "other.key")
    iso = iso_file(damaged, "network-configuration")
    rebuild(iso, load_signing_key(tmp_path / "other.key"))
    report = run(damaged, demo_set)
    problem = only(report, p.SIGNATURES, iso=iso.name, path=layout.SIGNER_PUB_PATH)
    assert "not among the trusted keys" in problem.message and problem.found == other_id
    only(report, p.SIGNATURES, iso=iso.name, path=layout.BACKUP_INFO_PATH, found=other_id)
    assert report.signer_key_id is None


def test_no_trusted_key_given_fails_closed(demo_set: DemoSet, damaged: Path):
    from omni_recovery.backupset.signing import TrustedSigners

    report = validate(str(damaged), TrustedSigners(frozenset()))
    assert not report.passed
    assert len(report.problems_of(p.SIGNATURES)) == len(report.isos)


def test_wrong_passphrase(demo_set: DemoSet, damaged: Path):
    report = run(damaged, demo_set, deep=True, passphrase=b"not the passphrase")
    problem = only(report, p.PASSPHRASE, iso=name(damaged, "system-core"), path=layout.DATA_KEY_PATH)
    assert "wrong passphrase" in problem.message
    only(report, p.ENCRYPTION, iso=name(damaged, "application-definition"))


# -- validly signed, bad manifests --------------------------------------------------------------


def _set_path(new_path: str) -> Any:
    def edit(manifest: dict[str, Any]) -> None:
        entry = next(e for e in manifest["files"] if e["path"].startswith("data/") and e.get("type") is None)
        entry["path"] = new_path

    return edit


@pytest.mark.parametrize(
    ("bad_path", "reason"),
    [
        ("data/../../etc/cron.d/evil", "'..' segment"),
        ("/etc/cron.d/evil", "path is absolute"),
        ("data\\network\\evil.yaml", "backslash"),
        ("data/network/evil\x00.yaml", "NUL"),
    ],
)
def test_unsafe_path_in_a_signed_manifest(demo_set: DemoSet, damaged: Path, bad_path: str, reason: str):
    iso = iso_file(damaged, "network-configuration")
    rebuild(iso, load_signing_key(demo_set.key_path), edit_manifest=_set_path(bad_path))
    report = run(damaged, demo_set)
    problem = only(report, p.MANIFEST, iso=iso.name, path=bad_path)
    assert reason in problem.message
    assert not report.problems_of(p.SIGNATURES), "the manifest is validly signed"


def test_duplicated_path(demo_set: DemoSet, damaged: Path):
    iso = iso_file(damaged, "director-state")
    path = data_file(iso)

    def duplicate(manifest: dict[str, Any]) -> None:
        manifest["files"].append(dict(next(e for e in manifest["files"] if e["path"] == path)))

    rebuild(iso, load_signing_key(demo_set.key_path), edit_manifest=duplicate)
    assert "listed twice" in only(run(damaged, demo_set), p.MANIFEST, iso=iso.name, path=path).message


def test_missing_chunk(demo_set: DemoSet, damaged: Path):
    iso = iso_file(damaged, "volume-data", 2)
    part = data_file(iso, chunked=True)
    index = edit_index(index_bytes(iso), "DELETE FROM files WHERE path = ?", (part,))
    rebuild(iso, load_signing_key(demo_set.key_path), drop={part}, replace={layout.INDEX_DB_PATH: index})
    report = run(damaged, demo_set)
    problem = only(report, p.CHUNKS, path=part)
    index_no = int(part.rsplit("-", 1)[1])
    assert f"part {index_no} of 3 is in no ISO of the set" in problem.message
    assert [pr.check for pr in report.blocking] == [p.CHUNKS], report.to_text()


def test_size_mismatch(demo_set: DemoSet, damaged: Path):
    iso = iso_file(damaged, "orchestrator-state")
    path = data_file(iso)

    def grow(manifest: dict[str, Any]) -> None:
        next(e for e in manifest["files"] if e["path"] == path)["size"] += 1

    rebuild(iso, load_signing_key(demo_set.key_path), edit_manifest=grow)
    problem = only(run(damaged, demo_set), p.SIZES, iso=iso.name, path=path)
    assert problem.expected is not None and problem.found is not None
    assert int(problem.expected) == int(problem.found) + 1


def test_absurd_declared_size_is_compared_not_allocated(demo_set: DemoSet, damaged: Path):
    iso = iso_file(damaged, "orchestrator-state")
    path = data_file(iso)

    def absurd(manifest: dict[str, Any]) -> None:
        next(e for e in manifest["files"] if e["path"] == path)["size"] = 1 << 60

    rebuild(iso, load_signing_key(demo_set.key_path), edit_manifest=absurd)
    report = run(damaged, demo_set, deep=True)
    problem = only(report, p.SIZES, iso=iso.name, path=path)
    assert problem.expected == str(1 << 60)
    assert report.bytes_hashed < demo_set.summary.data_bytes * 2


def test_malformed_recovery_index(demo_set: DemoSet, damaged: Path):
    iso = iso_file(damaged, "application-definition")
    garbage = b"SQLite format 3\x00" + b"\xff" * 4000
    rebuild(iso, load_signing_key(demo_set.key_path), replace={layout.INDEX_DB_PATH: garbage})
    problem = only(run(damaged, demo_set), p.RECOVERY_INDEX, iso=iso.name, path=layout.INDEX_DB_PATH)
    assert "recovery_index.db" in problem.message


def test_recovery_index_with_a_hostile_schema(demo_set: DemoSet, damaged: Path):
    iso = iso_file(damaged, "director-state")
    index = edit_index(index_bytes(iso), "DROP TABLE dependencies")
    index = edit_index(index, "CREATE VIEW dependencies AS SELECT 1 AS x")
    rebuild(iso, load_signing_key(demo_set.key_path), replace={layout.INDEX_DB_PATH: index})
    problem = only(run(damaged, demo_set), p.RECOVERY_INDEX, iso=iso.name)
    assert "lacks column" in problem.message


def test_dependency_on_a_component_in_no_iso(demo_set: DemoSet, damaged: Path):
    iso = iso_file(damaged, "system-core")
    data = index_bytes(iso)
    index = edit_index(
        data,
        "INSERT INTO dependencies (component_id, depends_on_id, strength) "
        "SELECT component_id, 'application:ghost', 'hard' FROM components WHERE kind = 'application' LIMIT 1",
    )
    rebuild(iso, load_signing_key(demo_set.key_path), replace={layout.INDEX_DB_PATH: index})
    report = run(damaged, demo_set)
    problem = only(report, p.REFERENCES, iso=iso.name, path=layout.INDEX_DB_PATH, found="application:ghost")
    assert "in no ISO of the set" in problem.message
    assert [pr.check for pr in report.blocking] == [p.REFERENCES], report.to_text()


def test_component_whose_iso_is_missing_is_named(demo_set: DemoSet, damaged: Path):
    iso_file(damaged, "volume-data", 4).unlink()
    report = run(damaged, demo_set)
    assert any(
        "is in no ISO of its kind volume-data" in pr.message for pr in report.problems_of(p.REFERENCES)
    )


def test_malformed_json_manifest_even_validly_signed(demo_set: DemoSet, damaged: Path):
    iso = iso_file(damaged, "network-configuration")
    with IsoReader(str(iso)) as reader:
        broken = reader.raw(layout.MANIFEST_PATH)[:-7]
    rebuild(iso, load_signing_key(demo_set.key_path), raw_manifest=broken)
    problem = only(run(damaged, demo_set), p.MANIFEST, iso=iso.name, path=layout.MANIFEST_PATH)
    assert "not valid JSON" in problem.message


def test_malformed_yaml_backup_info_validly_signed(demo_set: DemoSet, damaged: Path):
    iso = iso_file(damaged, "director-state")
    rebuild(
        iso, load_signing_key(demo_set.key_path), replace={layout.BACKUP_INFO_PATH: b"iso_set: [unclosed\n"}
    )
    report = run(damaged, demo_set)
    problem = only(report, p.BACKUP_INFO, iso=iso.name, path=layout.BACKUP_INFO_PATH)
    assert "not valid YAML" in problem.message
    only(report, p.BACKUP_INFO_CONSISTENT, iso=iso.name)


def test_symlink_leaving_its_volume_is_refused_not_followed(demo_set: DemoSet, damaged: Path):
    iso = iso_file(damaged, "volume-data", 2)
    with IsoReader(str(iso)) as reader:
        link = next(e.path for e in reader.manifest.files if e.type == "symlink")
    escape = "../../../../../../../../etc/shadow"

    def retarget(manifest: dict[str, Any]) -> None:
        next(e for e in manifest["files"] if e["path"] == link)["target"] = escape

    rebuild(iso, load_signing_key(demo_set.key_path), edit_manifest=retarget, symlinks={link: escape})
    problem = only(run(damaged, demo_set, deep=True), p.MANIFEST, iso=iso.name, path=link)
    assert "leaves its volume's files/ tree" in problem.message


def test_symlink_target_differing_from_the_manifest(demo_set: DemoSet, damaged: Path):
    iso = iso_file(damaged, "volume-data", 2)
    with IsoReader(str(iso)) as reader:
        link = next(e for e in reader.manifest.files if e.type == "symlink")
    rebuild(iso, load_signing_key(demo_set.key_path), symlinks={link.path: "elsewhere"})
    problem = only(run(damaged, demo_set), p.MANIFEST_LISTING, iso=iso.name, path=link.path)
    assert problem.expected == link.target and problem.found == "elsewhere"


def test_other_files_in_the_set_folder_are_named_and_left_alone(demo_set: DemoSet, damaged: Path):
    (damaged / "SHA256SUMS").write_text("hello")
    (damaged / "t1_volume-data_009.iso.partial").write_bytes(b"")
    (damaged / "extras").mkdir()
    report = run(damaged, demo_set)
    assert report.passed, report.to_text()
    notes = {pr.iso: pr for pr in report.problems}
    assert set(notes) == {"SHA256SUMS", "t1_volume-data_009.iso.partial", "extras"}
    assert all(pr.check == p.SET_MEMBERSHIP and not pr.blocking for pr in notes.values())
    assert "interrupted write" in notes["t1_volume-data_009.iso.partial"].message

    (damaged / "notes.iso").write_bytes(b"not named as an ISO of a set")
    only(run(damaged, demo_set), p.SET_MEMBERSHIP, iso="notes.iso")


def test_not_a_folder(demo_set: DemoSet, tmp_path: Path):
    report = validate(str(tmp_path / "nothing-here"), demo_set.trusted)
    assert not report.passed and report.problems[0].check == p.SET_LOCATION


def test_report_renders_as_a_table_and_json(demo_set: DemoSet, damaged: Path):
    iso_file(damaged, "volume-data", 3).unlink()
    report = run(damaged, demo_set)
    text = report.to_text()
    assert text.startswith("FAILED: shallow validation of backup set t1")
    assert "SEVERITY  CHECK" in text and "set_completeness" in text
    document = json.loads(report.to_json_text())
    assert document["passed"] is False and document["problems"][0].keys() >= {
        "severity",
        "check",
        "iso",
        "path",
        "expected",
        "found",
        "message",
        "blocking",
    }


def test_the_same_data_file_in_two_isos_is_ambiguous(demo_set: DemoSet, damaged: Path):
    core, network = iso_file(damaged, "system-core"), iso_file(damaged, "network-configuration")
    with IsoReader(str(network)) as reader:
        path = next(e.path for e in reader.manifest.files if e.path.startswith("data/network/"))
        data = reader.raw(path)
    rebuild(core, load_signing_key(demo_set.key_path), add={path: (data, {"component": "network:config"})})
    problem = only(run(damaged, demo_set), p.DUPLICATE_PATHS, path=path)
    assert core.name in str(problem.iso) and network.name in str(problem.iso)
