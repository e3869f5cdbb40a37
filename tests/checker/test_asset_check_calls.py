"""The one-call entry points a Dagster asset check uses, on the good set and on a damaged copy."""

from __future__ import annotations

from pathlib import Path

from omni_recovery.backupset.reader import IsoReader, unlock_data_key
from omni_recovery.validate import (
    check_iso_url,
    check_set_urls,
    deep_check_chunks,
    deep_check_iso_url,
    list_set_folder,
    open_iso,
    passed_and_metadata,
)
from omni_recovery.validate import problems as p
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.checker.tamper import copy_set, flip_byte, iso_file


def test_per_iso_set_and_deep_calls_pass_on_the_good_set(demo_set: DemoSet):
    urls, problems = list_set_folder(str(demo_set.output))
    assert not problems and len(urls) == len(demo_set.summary.isos)
    for url in urls.values():
        assert check_iso_url(url, demo_set.trusted) == []
    assert check_set_urls(urls) == []
    core = next(url for name, url in urls.items() if "_system-core_" in name)
    with IsoReader(core) as reader:
        key = unlock_data_key(reader, PASSPHRASE)
    for url in urls.values():
        assert deep_check_iso_url(url, key) == []
    readers: dict[str, IsoReader | None] = {name: open_iso(url)[0] for name, url in urls.items()}
    try:
        assert deep_check_chunks(readers, part_hashes=False) == []
    finally:
        for opened in readers.values():
            assert opened is not None
            opened.close()
    assert passed_and_metadata([]) == (
        True,
        {"errors": 0, "warnings": 0, "blocking": 0, "problems_markdown": "no problems"},
    )


def test_per_iso_deep_call_names_the_damaged_file(demo_set: DemoSet, tmp_path: Path):
    folder = copy_set(demo_set.output, tmp_path / "set")
    iso = iso_file(folder, "volume-data", 1)
    with IsoReader(str(iso)) as reader:
        path = next(e.path for e in reader.manifest.files if e.path.startswith("data/") and e.size > 64)
    flip_byte(iso, path, 7)
    found = deep_check_iso_url(str(iso), None)
    assert [(pr.check, pr.iso, pr.path) for pr in found] == [(p.FILE_HASHES, iso.name, path)]
    passed, metadata = passed_and_metadata(found)
    assert not passed and metadata["blocking"] == 1 and path in metadata["problems_markdown"]


def test_a_set_on_another_fsspec_filesystem_validates_deeply(demo_set: DemoSet):
    import fsspec

    from omni_recovery.validate import validate

    memory = fsspec.filesystem("memory")
    for iso in sorted(demo_set.output.iterdir()):
        memory.pipe(f"/checker-set/{iso.name}", iso.read_bytes())
    try:
        report = validate("memory://checker-set", demo_set.trusted, PASSPHRASE, deep=True)
        assert report.problems == [] and report.passed, report.to_text()
        assert report.bytes_hashed >= demo_set.summary.data_bytes
    finally:
        memory.rm("/checker-set", recursive=True)
