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
    wide = "漢字のファイル名" * 5  # 40 characters, 120 bytes of UTF-8
    jnames = [joliet.joliet(n) for n in [long, long + "y", "a:b", "A:B", wide, wide + "x", "😀" * 20]]
    assert len({n.lower() for n in jnames}) == 7
    # pycdlib refuses a Joliet name of more than 64 bytes of UTF-8
    assert all(len(n.encode()) <= 64 and ":" not in n for n in jnames)
    assert jnames[4].startswith("漢字のファイル名")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T02:00:00Z", "2026-11-20T02:00:00+00:00"),
        ("2026-11-20t02:00:00z", "2026-11-20T02:00:00+00:00"),
        ("2026-11-20T02:00:00.123456789Z", "2026-11-20T02:00:00.123456+00:00"),
        ("2026-11-20T04:00:00+02:00", "2026-11-20T04:00:00+02:00"),
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59+00:00"),  # a leap second
        ("2026-11-20T02:00:00", "2026-11-20T02:00:00+00:00"),  # no offset: read as UTC
    ],
)
def test_times_are_read_as_rfc_3339_allows_them(text: str, expected: str) -> None:
    assert layout.parse_time(text).isoformat() == expected


def test_what_is_no_time_is_refused() -> None:
    with pytest.raises(ValueError):
        layout.parse_time("yesterday")
