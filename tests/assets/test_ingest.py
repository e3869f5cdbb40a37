"""The ingest of one ISO, called directly: every table, checked against the reader; foreign ISOs refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from assets.ingest import INGEST_TABLES, read_iso_tables
from omni_recovery.backupset.reader import IsoReader, list_backup_set
from omni_recovery.errors import BackupSetError
from tests.catalog_fixtures import DemoSet


def test_every_ingest_table_of_every_iso(demo_set: DemoSet) -> None:
    config_files = 0
    for member in list_backup_set(str(demo_set.output)):
        key = member.name.filename
        tables = read_iso_tables(key, member.url, member.size)
        assert set(tables) == set(INGEST_TABLES)
        with IsoReader(member.url) as reader:
            assert tables["iso_manifest"].num_rows == len(reader.manifest.files)
            assert set(tables["iso_directory_records"].column("path").to_pylist()) == set(reader.listing)
            index = reader.index()
        assert tables["iso_index_components"].num_rows == len(index.components)
        assert tables["iso_index_dependencies"].num_rows == len(index.dependencies)
        assert tables["iso_index_files"].num_rows == len(index.files)
        assert tables["iso_index_hardware"].num_rows == len(index.hardware)
        info = tables["iso_backup_info"].to_pylist()[0]
        assert (info["iso_name"], info["kind"], info["size_bytes"]) == (key, member.name.kind, member.size)
        records = tables["iso_directory_records"]
        assert set(records.column("name_source").to_pylist()) == {"rock_ridge"}
        config_files += tables["iso_config_files"].num_rows
        for table in tables.values():
            if "backup_set_id" in table.column_names:
                assert set(table.column("backup_set_id").to_pylist()) <= {"t1"}
    assert config_files > 20


def test_an_iso_renamed_into_another_set_is_refused(demo_set: DemoSet, tmp_path: Path) -> None:
    source = demo_set.output / "t1_system-core_001.iso"
    renamed = tmp_path / "zz_system-core_001.iso"
    shutil.copy(source, renamed)
    with pytest.raises(BackupSetError) as caught:
        read_iso_tables(renamed.name, str(renamed), renamed.stat().st_size)
    assert "zz_system-core_001.iso" in str(caught.value) and "foreign or renamed" in str(caught.value)


def test_a_file_that_is_not_an_iso_is_refused_by_name(tmp_path: Path) -> None:
    fake = tmp_path / "t1_system-core_001.iso"
    fake.write_bytes(b"\0" * 70_000)
    with pytest.raises(BackupSetError) as caught:
        read_iso_tables(fake.name, str(fake), fake.stat().st_size)
    assert "t1_system-core_001.iso" in str(caught.value)


def test_an_iso_on_an_fsspec_url(demo_set: DemoSet) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    name = "t1_network-configuration_001.iso"
    fs.pipe(f"/catalog-ingest/{name}", (demo_set.output / name).read_bytes())
    try:
        (member,) = list_backup_set("memory://catalog-ingest")
        tables = read_iso_tables(name, member.url, member.size)
        assert tables["iso_backup_info"].column("url")[0].as_py().endswith("/catalog-ingest/" + name)
        assert tables["iso_manifest"].num_rows > 3
    finally:
        fs.rm("/catalog-ingest", recursive=True)
