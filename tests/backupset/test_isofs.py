"""Tests of the streaming ISO 9660 reader, against images written (and re-read) by pycdlib."""

from __future__ import annotations

import io
import stat
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fsspec
import pycdlib
import pytest
from pycdlib.dr import DirectoryRecord

from omni_recovery.backupset.isofs import IsoEntry, IsoImage
from omni_recovery.backupset.rockridge import tf_modify
from omni_recovery.errors import BackupSetError, IntegrityError, UnsafePathError

Buffer = bytes | bytearray

# -- helpers ----------------------------------------------------------------------------


class IsoBuilder:
    """Writes a small image with pycdlib from Rock Ridge style paths, making up ISO 9660 names."""

    def __init__(
        self, *, rock_ridge: str | None = "1.09", joliet: int | None = 3, interchange_level: int = 4
    ):
        self.rock_ridge = rock_ridge
        self.joliet = joliet
        self.iso = pycdlib.PyCdlib()
        self.iso.new(interchange_level=interchange_level, joliet=joliet, rock_ridge=rock_ridge)
        self._iso_paths: dict[str, str] = {"": ""}
        self._joliet_paths: dict[str, str] = {"": ""}
        self._count = 0
        self._keep: list[io.BytesIO] = []  # add_fp needs its file objects open until write

    def _names(self, path: str, *, is_file: bool) -> tuple[str, str, str | None, str]:
        parent, _, name = path.rpartition("/")
        self._count += 1
        iso = f"{self._iso_paths[parent]}/{'F' if is_file else 'D'}{self._count}" + (".;1" if is_file else "")
        joliet_name = name if len(name) <= 64 else f"{name[:50]}~{self._count}"
        joliet = f"{self._joliet_paths[parent]}/{joliet_name}"
        self._iso_paths[path] = iso
        self._joliet_paths[path] = joliet
        return iso, name, joliet if self.joliet else None, parent

    def dir(self, path: str, mode: int | None = None) -> IsoBuilder:
        iso, name, joliet, _ = self._names(path, is_file=False)
        rr_name = name if self.rock_ridge else None
        self.iso.add_directory(iso, rr_name=rr_name, joliet_path=joliet, file_mode=mode)
        return self

    def file(self, path: str, data: bytes, mode: int | None = None) -> IsoBuilder:
        iso, name, joliet, _ = self._names(path, is_file=True)
        fp = io.BytesIO(data)
        self._keep.append(fp)
        rr_name = name if self.rock_ridge else None
        self.iso.add_fp(fp, len(data), iso, rr_name=rr_name, joliet_path=joliet, file_mode=mode)
        return self

    def symlink(self, path: str, target: str) -> IsoBuilder:
        iso, name, joliet, _ = self._names(path, is_file=True)
        self.iso.add_symlink(iso, name, target, joliet_path=joliet)
        return self

    def write(self, dest: Path) -> Path:
        self.iso.write(str(dest))
        self.iso.close()
        return dest


def entries(path: Path) -> dict[str, IsoEntry]:
    with IsoImage.open(str(path)) as image:
        return {entry.path: entry for entry in image.walk()}


def root_directory(raw: Buffer, descriptor_sector: int = 16) -> tuple[int, int]:
    """(byte offset, length) of the root directory named by the descriptor at that sector."""
    vd = descriptor_sector * 2048
    block = struct.unpack_from("<I", raw, vd + 156 + 2)[0]
    size = struct.unpack_from("<I", raw, vd + 156 + 10)[0]
    return block * 2048, size


def records(raw: Buffer, offset: int, size: int) -> dict[bytes, int]:
    """Identifier -> absolute byte position of each record in one directory extent."""
    found: dict[bytes, int] = {}
    pos = 0
    while pos < size:
        length = raw[offset + pos]
        if length == 0:
            pos = (pos // 2048 + 1) * 2048
            continue
        name_length = raw[offset + pos + 32]
        found[bytes(raw[offset + pos + 33 : offset + pos + 33 + name_length])] = offset + pos
        pos += length
    return found


def record_extent(raw: Buffer, position: int) -> tuple[int, int]:
    block = struct.unpack_from("<I", raw, position + 2)[0]
    return block * 2048, struct.unpack_from("<I", raw, position + 10)[0]


def plain_iso(tmp_path: Path, files: dict[str, bytes], dirs: tuple[str, ...] = ()) -> tuple[Path, bytearray]:
    """An ISO 9660-only image (no Rock Ridge, no Joliet) and its bytes."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1)
    for directory in dirs:
        iso.add_directory(directory)
    keep = []
    for iso_path, data in files.items():
        fp = io.BytesIO(data)
        keep.append(fp)
        iso.add_fp(fp, len(data), iso_path)
    dest = tmp_path / "plain.iso"
    iso.write(str(dest))
    iso.close()
    return dest, bytearray(dest.read_bytes())


UNICODE_NAME = "données-ü-日本語-файл.txt"
LONG_NAME = "long-" + "n" * 140 + ".bin"
LONG_TARGET = "/".join(f"segment{i:03d}-" + "y" * 20 for i in range(14))  # > 255 bytes: several SL entries


@pytest.fixture(scope="module")
def mixed_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    b = IsoBuilder()
    b.dir("metadata")
    b.file("metadata/manifest.json", b'{"format": "omnicloud-backup/1"}', mode=0o100644)
    b.dir("data", mode=0o40755)
    b.dir("data/volumes")
    b.dir("data/volumes/app")
    b.dir("data/volumes/app/vol")
    b.dir("data/volumes/app/vol/files", mode=0o40700)
    b.file("data/volumes/app/vol/files/a.txt", b"alpha\n" * 1000, mode=0o100600)
    b.file("data/volumes/app/vol/files/empty", b"", mode=0o100640)
    b.dir("data/volumes/app/vol/files/emptydir", mode=0o40750)
    b.file(f"data/volumes/app/vol/files/{UNICODE_NAME}", "ünïcödé".encode(), mode=0o100644)
    b.file(f"data/volumes/app/vol/files/{LONG_NAME}", bytes(range(256)) * 40, mode=0o100755)
    b.symlink("data/volumes/app/vol/files/link", "a.txt")
    b.symlink("data/volumes/app/vol/files/up", "../vol/files/./a.txt")
    b.symlink("data/volumes/app/vol/files/abs", "/etc/passwd")
    b.symlink("data/volumes/app/vol/files/longlink", LONG_TARGET)
    b.file("recovery.log", b"log line\n")
    return b.write(tmp_path_factory.mktemp("iso") / "mixed.iso")


# -- reading what was written -----------------------------------------------------------


def test_mixed_image_names_modes_sizes_and_targets(mixed_iso: Path) -> None:
    found = entries(mixed_iso)
    files = "data/volumes/app/vol/files"
    assert set(found) == {
        "metadata",
        "metadata/manifest.json",
        "data",
        "data/volumes",
        "data/volumes/app",
        "data/volumes/app/vol",
        files,
        f"{files}/a.txt",
        f"{files}/empty",
        f"{files}/emptydir",
        f"{files}/{UNICODE_NAME}",
        f"{files}/{LONG_NAME}",
        f"{files}/link",
        f"{files}/up",
        f"{files}/abs",
        f"{files}/longlink",
        "recovery.log",
    }
    a = found[f"{files}/a.txt"]
    assert (a.type, a.size, a.mode, a.name_source) == ("file", 6000, 0o100600, "rock_ridge")
    assert a.iso9660_name.endswith(";1")
    assert a.extents == ((a.offset, 6000),)
    assert found[f"{files}/empty"].size == 0 and found[f"{files}/empty"].mode == 0o100640
    assert found[f"{files}/{LONG_NAME}"].size == 256 * 40
    assert found[f"{files}/{LONG_NAME}"].mode == 0o100755
    assert found[f"{files}/{UNICODE_NAME}"].size == len("ünïcödé".encode())
    assert found["data"].mode == 0o40755 and found["data"].type == "dir" and found["data"].size == 0
    empty_dir = found[f"{files}/emptydir"]
    assert (empty_dir.type, empty_dir.mode, empty_dir.extents) == ("dir", 0o40750, ())
    targets = {path.rpartition("/")[2]: e.symlink_target for path, e in found.items() if e.type == "symlink"}
    assert targets == {
        "link": "a.txt",
        "up": "../vol/files/./a.txt",
        "abs": "/etc/passwd",
        "longlink": LONG_TARGET,
    }
    for entry in found.values():
        if entry.type == "symlink":
            assert entry.size == 0 and entry.extents == () and entry.mode is not None
            assert stat.S_ISLNK(entry.mode)
        assert entry.mtime is not None and entry.mtime.tzinfo is not None
        assert entry.mtime.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - entry.mtime) < timedelta(days=1)


def test_walk_lists_parents_before_children(mixed_iso: Path) -> None:
    with IsoImage.open(str(mixed_iso)) as image:
        order = [entry.path for entry in image.walk()]
    assert len(order) == len(set(order))
    for index, path in enumerate(order):
        parent = path.rpartition("/")[0]
        if parent:
            assert order.index(parent) < index


def test_walk_agrees_with_pycdlib(mixed_iso: Path) -> None:
    ours = entries(mixed_iso)
    reference = pycdlib.PyCdlib()
    reference.open(str(mixed_iso))
    try:
        theirs: dict[str, str] = {}
        for root, dirs, names in reference.walk(rr_path="/"):
            prefix = root.strip("/")
            for name in dirs:
                theirs[f"{prefix}/{name}".lstrip("/")] = "dir"
            for name in names:
                theirs[f"{prefix}/{name}".lstrip("/")] = "file"
        assert set(theirs) == set(ours)
        for path, entry in ours.items():
            record = reference.get_record(rr_path="/" + path)
            assert isinstance(record, DirectoryRecord) and record.rock_ridge is not None
            if entry.type == "symlink":
                assert record.rock_ridge.symlink_path().decode() == entry.symlink_target
            elif entry.type == "file":
                assert theirs[path] == "file"
                assert record.get_data_length() == entry.size
                assert record.extent_location() * 2048 == entry.offset or entry.size == 0
                assert record.rock_ridge.get_file_mode() == entry.mode
            else:
                assert theirs[path] == "dir"
    finally:
        reference.close()


def test_extents_point_at_the_bytes_in_the_raw_image(mixed_iso: Path) -> None:
    raw = mixed_iso.read_bytes()
    with IsoImage.open(str(mixed_iso)) as image:
        for entry in image.walk():
            if entry.type != "file":
                continue
            content = image.read_bytes(entry)
            assert len(content) == entry.size
            assert raw[entry.offset : entry.offset + entry.size] == content
            assert b"".join(image.iter_chunks(entry, block_size=1000)) == content
            assert all(len(chunk) <= 1000 for chunk in image.iter_chunks(entry, block_size=1000))
        assert image.read_bytes(image.find("data/volumes/app/vol/files/a.txt")) == b"alpha\n" * 1000


def test_find_walks_only_the_path(mixed_iso: Path) -> None:
    with IsoImage.open(str(mixed_iso)) as image:
        entry = image.find(f"data/volumes/app/vol/files/{UNICODE_NAME}")
        assert image.read_bytes(entry) == "ünïcödé".encode()
        assert image.find("data/volumes").type == "dir"
        assert image.find("data/volumes/app/vol/files/link").symlink_target == "a.txt"
        with pytest.raises(BackupSetError) as missing:
            image.find("data/volumes/app/nope.txt")
        assert missing.value.iso == "mixed.iso" and missing.value.path == "data/volumes/app/nope.txt"
        with pytest.raises(BackupSetError):
            image.find("recovery.log/below")
        with pytest.raises(BackupSetError, match="symbolic link"):
            image.find("data/volumes/app/vol/files/link/x")
        with pytest.raises(UnsafePathError):
            image.find("data/../metadata")
        with pytest.raises(UnsafePathError):
            image.find("/data")


def test_read_bytes_refuses_big_files_and_non_files(mixed_iso: Path) -> None:
    with IsoImage.open(str(mixed_iso)) as image:
        with pytest.raises(BackupSetError, match="more than"):
            image.read_bytes(image.find("data/volumes/app/vol/files/a.txt"), limit=100)
        with pytest.raises(BackupSetError, match="not a regular file"):
            image.read_bytes(image.find("data"))
        with pytest.raises(BackupSetError, match="not a regular file"):
            list(image.iter_chunks(image.find("data/volumes/app/vol/files/link")))


def test_image_properties(mixed_iso: Path) -> None:
    with IsoImage.open(str(mixed_iso)) as image:
        assert image.has_rock_ridge and image.has_joliet
        assert image.block_size == 2048
        assert image.size == mixed_iso.stat().st_size


def _deep_builder(interchange_level: int, depth: int) -> tuple[IsoBuilder, list[str]]:
    b = IsoBuilder(interchange_level=interchange_level)
    expected = []
    path = ""
    for level in range(depth):
        path = f"{path}/level{level}".lstrip("/")
        b.dir(path, mode=0o40755)
        b.file(f"{path}/f{level}.txt", f"at depth {level}".encode())
        expected += [path, f"{path}/f{level}.txt"]
    b.dir("side")
    b.file("side/x", b"x")
    return b, [*expected, "side", "side/x"]


@pytest.mark.parametrize("interchange_level", [4, 3])
def test_deep_trees_come_out_where_written(tmp_path: Path, interchange_level: int) -> None:
    # At interchange level 3 pycdlib relocates directories deeper than 8 levels to
    # rr_moved (CL/RE/PL records); the paths must still come out as written.
    builder, expected = _deep_builder(interchange_level, 12)
    path = builder.write(tmp_path / "deep.iso")
    found = entries(path)
    assert sorted(found) == sorted(expected)
    with IsoImage.open(str(path)) as image:
        for level in (0, 8, 11):
            parts = [f"level{n}" for n in range(level + 1)]
            entry = image.find("/".join([*parts, f"f{level}.txt"]))
            assert image.read_bytes(entry) == f"at depth {level}".encode()
        assert all(
            e.mode == 0o40755 for e in found.values() if e.path.startswith("level") and e.type == "dir"
        )
    if interchange_level == 3:
        reference = pycdlib.PyCdlib()
        reference.open(str(path))
        try:
            moved = next(dirs for root, dirs, _ in reference.walk(iso_path="/") if root == "/")
            assert "RR_MOVED" in moved  # the writer really relocated something
            listed = set()
            for root, dirs, names in reference.walk(rr_path="/"):
                for name in [*dirs, *names]:
                    listed.add(f"{root.strip('/')}/{name}".lstrip("/"))
            assert listed - set(found) == {"rr_moved"}  # pycdlib shows its relocation folder
        finally:
            reference.close()


def test_rock_ridge_112_with_xa_honours_the_sp_skip(tmp_path: Path) -> None:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=4, rock_ridge="1.12", xa=True)
    iso.add_directory("/D", rr_name="dir", file_mode=0o40711)
    iso.add_fp(io.BytesIO(b"abc"), 3, "/D/A.;1", rr_name="a file", file_mode=0o100640)
    iso.add_symlink("/D/L.;1", "ln", "a file")
    iso.write(str(tmp_path / "xa.iso"))
    iso.close()
    found = entries(tmp_path / "xa.iso")
    assert found["dir"].mode == 0o40711
    assert (found["dir/a file"].mode, found["dir/a file"].size) == (0o100640, 3)
    assert found["dir/ln"].symlink_target == "a file"


def test_joliet_only_image_takes_joliet_names(tmp_path: Path) -> None:
    b = IsoBuilder(rock_ridge=None)
    b.dir("Mixed Case Dir")
    b.file("Mixed Case Dir/Ünïcode file.txt", b"hello")
    b.dir("Mixed Case Dir/Empty")
    b.file("top.json", b"{}")
    path = b.write(tmp_path / "joliet.iso")
    with IsoImage.open(str(path)) as image:
        assert image.has_joliet and not image.has_rock_ridge
        found = {e.path: e for e in image.walk()}
        assert set(found) == {
            "Mixed Case Dir",
            "Mixed Case Dir/Ünïcode file.txt",
            "Mixed Case Dir/Empty",
            "top.json",
        }
        entry = found["Mixed Case Dir/Ünïcode file.txt"]
        assert (entry.name_source, entry.mode, entry.size) == ("joliet", None, 5)
        assert entry.iso9660_name == "Ünïcode file.txt"  # the Joliet identifier as recorded
        assert image.read_bytes(entry) == b"hello"
        assert found["Mixed Case Dir/Empty"].type == "dir"
        assert all(e.mtime is not None for e in found.values())


def test_plain_iso9660_image_takes_identifiers(tmp_path: Path) -> None:
    path, _ = plain_iso(tmp_path, {"/README.TXT;1": b"read me", "/DIR/NOEXT.;1": b"x" * 5000}, dirs=("/DIR",))
    with IsoImage.open(str(path)) as image:
        assert not image.has_joliet and not image.has_rock_ridge
        found = {e.path: e for e in image.walk()}
    assert set(found) == {"README.TXT", "DIR", "DIR/NOEXT"}
    assert found["DIR/NOEXT"].iso9660_name == "NOEXT.;1"
    assert found["DIR/NOEXT"].size == 5000
    assert {e.name_source for e in found.values()} == {"iso9660"}
    assert all(e.mode is None for e in found.values())


def test_open_through_fsspec_url(mixed_iso: Path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/isofs-test/copy.iso", mixed_iso.read_bytes())
    try:
        with IsoImage.open("memory://isofs-test/copy.iso") as image:
            assert image.name == "copy.iso"
            assert image.read_bytes(image.find("recovery.log")) == b"log line\n"
    finally:
        fs.rm("/isofs-test", recursive=True)


def test_tf_long_form_and_short_form() -> None:
    short = (
        b"TF" + bytes([5 + 14, 1, 0x03]) + bytes([100, 1, 2, 3, 4, 5, 0]) + bytes([126, 11, 20, 2, 0, 0, 4])
    )
    assert tf_modify(short, 0, len(short)) == datetime(2026, 11, 20, 1, 0, 0, tzinfo=UTC)
    long_form = b"TF" + bytes([5 + 17, 1, 0x82]) + b"2026112002000000" + bytes([4])
    assert tf_modify(long_form, 0, len(long_form)) == datetime(2026, 11, 20, 1, 0, 0, tzinfo=UTC)
    unset = b"TF" + bytes([5 + 17, 1, 0x82]) + b"0000000000000000" + bytes([0])
    assert tf_modify(unset, 0, len(unset)) is None


# -- multi-extent files -------------------------------------------------------------------


def test_multi_extent_records_become_one_entry(tmp_path: Path) -> None:
    first, second = b"a" * 3000, b"b" * 100
    path, raw = plain_iso(tmp_path, {"/A.;1": first, "/B.;1": second})
    found = records(raw, *root_directory(raw))
    raw[found[b"A.;1"] + 25] |= 0x80  # "not the final extent"
    raw[found[b"B.;1"] + 33] = ord("A")  # the second part has the same name
    path.write_bytes(raw)
    with IsoImage.open(str(path)) as image:
        (entry,) = list(image.walk())
        assert (entry.path, entry.size, len(entry.extents)) == ("A", 3100, 2)
        assert entry.offset == entry.extents[0][0]
        assert b"".join(image.iter_chunks(entry, block_size=512)) == first + second
        assert image.read_bytes(entry) == first + second


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    path, raw = plain_iso(tmp_path, {"/A.;1": b"1", "/B.;1": b"2"})
    raw[records(raw, *root_directory(raw))[b"B.;1"] + 33] = ord("A")
    path.write_bytes(raw)
    with pytest.raises(BackupSetError, match="same name"), IsoImage.open(str(path)) as image:
        list(image.walk())


# -- damaged and hostile images ---------------------------------------------------------------


def test_truncated_image_is_refused_by_name(mixed_iso: Path, tmp_path: Path) -> None:
    raw = mixed_iso.read_bytes()
    for keep in (len(raw) // 2, 20_000, 16 * 2048 + 100, 0):
        cut = tmp_path / "cut.iso"
        cut.write_bytes(raw[:keep])
        with pytest.raises(BackupSetError, match=r"cut\.iso"), IsoImage.open(str(cut)) as image:
            list(image.walk())


def test_data_past_the_end_is_refused_even_when_the_size_field_lies(tmp_path: Path) -> None:
    path, raw = plain_iso(tmp_path, {"/A.;1": b"a" * 10_000})
    position = records(raw, *root_directory(raw))[b"A.;1"]
    offset, _ = record_extent(raw, position)
    struct.pack_into("<I", raw, 16 * 2048 + 80, offset // 2048)  # claim the image ends before A
    path.write_bytes(raw[:offset])
    with pytest.raises(BackupSetError, match="outside the image"), IsoImage.open(str(path)) as image:
        list(image.walk())


def test_extent_past_the_end_is_refused(tmp_path: Path) -> None:
    path, raw = plain_iso(tmp_path, {"/A.;1": b"a"})
    struct.pack_into("<I", raw, records(raw, *root_directory(raw))[b"A.;1"] + 2, 0x00FFFFFF)
    path.write_bytes(raw)
    with pytest.raises(BackupSetError, match="outside the image") as error, IsoImage.open(str(path)) as image:
        list(image.walk())
    assert error.value.iso == "plain.iso" and error.value.path == "A"


@pytest.mark.parametrize(("field", "value", "message"), [(0, 20, "overrun"), (32, 200, "name overrun")])
def test_corrupted_record_lengths_are_refused(
    mixed_iso: Path, tmp_path: Path, field: int, value: int, message: str
) -> None:
    raw = bytearray(mixed_iso.read_bytes())
    offset, size = root_directory(raw)
    positions = sorted(records(raw, offset, size).values())
    raw[positions[2] + field] = value  # the first record after "." and ".."
    bad = tmp_path / "bad.iso"
    bad.write_bytes(raw)
    with pytest.raises(BackupSetError, match=message) as error, IsoImage.open(str(bad)) as image:
        list(image.walk())
    assert "bad.iso" in str(error.value)


def test_directory_loop_is_refused(tmp_path: Path) -> None:
    path, raw = plain_iso(tmp_path, {"/DIR/A.;1": b"a"}, dirs=("/DIR", "/DIR/SUB"))
    dir_position = records(raw, *root_directory(raw))[b"DIR"]
    dir_offset, dir_size = record_extent(raw, dir_position)
    sub_position = records(raw, dir_offset, dir_size)[b"SUB"]
    struct.pack_into("<I", raw, sub_position + 2, dir_offset // 2048)  # SUB is DIR again
    path.write_bytes(raw)
    with pytest.raises(BackupSetError, match="loop"), IsoImage.open(str(path)) as image:
        list(image.walk())
    with pytest.raises(BackupSetError, match="loop"), IsoImage.open(str(path)) as image:
        image.find("DIR/SUB/SUB/A")


@pytest.mark.parametrize("bad_name", [b"a/", b"..", b"a\\", b"a\x00"])
def test_unsafe_rock_ridge_names_are_refused(tmp_path: Path, bad_name: bytes) -> None:
    b = IsoBuilder(joliet=None)
    b.file("ab", b"x")
    path = b.write(tmp_path / "names.iso")
    raw = path.read_bytes()
    nm = b"NM\x07\x01\x00ab"
    assert raw.count(nm) == 1
    path.write_bytes(raw.replace(nm, b"NM\x07\x01\x00" + bad_name))
    with pytest.raises(UnsafePathError, match=r"names\.iso"), IsoImage.open(str(path)) as image:
        list(image.walk())


def test_dot_rock_ridge_name_flag_is_refused(tmp_path: Path) -> None:
    path = IsoBuilder(joliet=None).file("ab", b"x").write(tmp_path / "dot.iso")
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b"NM\x07\x01\x00ab", b"NM\x07\x01\x04ab"))  # PARENT flag
    with pytest.raises(UnsafePathError), IsoImage.open(str(path)) as image:
        list(image.walk())


def test_continuation_area_outside_the_image_is_refused(tmp_path: Path) -> None:
    path = IsoBuilder(joliet=None).file("n" * 250, b"x").write(tmp_path / "ce.iso")
    raw = bytearray(path.read_bytes())
    ce = b"CE\x1c\x01"
    assert raw.count(ce) >= 2  # the root's "." and the long name
    start = 0
    while (start := raw.find(ce, start)) != -1:
        struct.pack_into("<I", raw, start + 4, 0x00FFFFFF)
        start += 1
    path.write_bytes(raw)
    with pytest.raises(BackupSetError, match="continuation area"), IsoImage.open(str(path)) as image:
        list(image.walk())


def test_bad_volume_descriptor_sets_are_refused(mixed_iso: Path, tmp_path: Path) -> None:
    raw = mixed_iso.read_bytes()
    pvd = 16 * 2048
    terminator = next(s for s in range(16, 64) if raw[s * 2048] == 255) * 2048
    endless = (b"\x03CD001\x01").ljust(2048, b"\x00") * 70  # descriptors, but never a terminator
    cases = {
        "lacks 'CD001'": raw[: pvd + 1] + b"XX001" + raw[pvd + 6 :],
        "no primary volume descriptor": raw[:pvd] + b"\x03" + raw[pvd + 1 :],
        "sector 20 lacks 'CD001'": raw[:terminator] + b"\x03" + raw[terminator + 1 :],
        "not an ISO 9660 image": b"\x00" * 64 * 2048,
        "no volume descriptor set terminator": b"\x00" * pvd + endless,
    }
    for message, data in cases.items():
        bad = tmp_path / "vd.iso"
        bad.write_bytes(data)
        with pytest.raises(BackupSetError, match=message) as error:
            IsoImage.open(str(bad))
        assert error.value.iso == "vd.iso"


def test_missing_file_is_a_backup_set_error(tmp_path: Path) -> None:
    with pytest.raises(BackupSetError, match=r"missing\.iso"):
        IsoImage.open(str(tmp_path / "missing.iso"))


def test_short_read_is_an_integrity_error(mixed_iso: Path) -> None:
    buffer = io.BytesIO(mixed_iso.read_bytes())
    image = IsoImage(buffer, name="shrinking.iso")
    entry = image.find("data/volumes/app/vol/files/a.txt")
    buffer.truncate(entry.offset + 10)  # the image shrinks after it was opened
    with pytest.raises(IntegrityError) as error:
        list(image.iter_chunks(entry))
    assert error.value.iso == "shrinking.iso" and error.value.path == entry.path
    with pytest.raises(IntegrityError):
        image.read_bytes(entry)
