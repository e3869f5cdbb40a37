import pytest

from omni_recovery.backupset import layout
from omni_recovery.backupset.names import DirectoryNames
from omni_recovery.errors import BackupSetError


def test_iso_filename_round_trip():
    name = layout.iso_filename("prod-eu1-20261120t0200z", "volume-data", 2)
    assert name == "prod-eu1-20261120t0200z_volume-data_002.iso"
    assert layout.parse_iso_filename(name) == layout.IsoName("prod-eu1-20261120t0200z", "volume-data", 2)


@pytest.mark.parametrize(
    "bad",
    [
        "notes.txt",
        "set_unknown-kind_001.iso",
        "Set_system-core_001.iso",
        "set_system-core_000.iso",
        "set_system-core_1.iso",
    ],
)
def test_foreign_names_are_refused_by_name(bad):
    with pytest.raises(BackupSetError, match=bad.replace(".", r"\.")):
        layout.parse_iso_filename(bad)


def test_directory_names_are_unique_and_within_limits():
    names = DirectoryNames()
    long = "x" * 100
    isos = {names.iso9660(n, is_dir=False) for n in ["a.txt", "A.txt", "a_txt", long, long + "y"]}
    assert len(isos) == 5
    assert all(len(n.split(";")[0]) <= 30 for n in isos)
    joliet = DirectoryNames()
    jnames = [joliet.joliet(n) for n in [long, long + "y", "a:b", "A:B"]]
    assert len({n.lower() for n in jnames}) == 4
    assert all(len(n) <= 64 and ":" not in n for n in jnames)
