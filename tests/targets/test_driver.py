"""TargetRoot: paths stay inside the root, files appear only whole, symlinks stay in their files/ tree."""

from __future__ import annotations

import os
import posixpath
import stat
import uuid
from pathlib import Path

import pytest

from omni_recovery.errors import UnsafePathError
from omni_recovery.targets.driver import PARTIAL_SUFFIX, TargetError, TargetRoot, partial_relpath

FILES = "volumes/app/vol/files"


@pytest.fixture(params=[True, False], ids=["fsync", "no-fsync"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> TargetRoot:
    return TargetRoot(str(tmp_path / "node"), fsync=request.param)


@pytest.mark.parametrize(
    "bad", ["../x", "a/../../x", "/etc/passwd", "a/./b", "a//b", "a\\b", "a\x00b", "", "a/", "..", "."]
)
def test_resolve_refuses_paths_leaving_the_root(tmp_path: Path, bad: str):
    root = TargetRoot(str(tmp_path))
    with pytest.raises(UnsafePathError):
        root.resolve(bad)
    with pytest.raises(UnsafePathError):
        root.write_bytes_atomic(bad, b"x")
    assert os.listdir(tmp_path) == []


def test_open_atomic_renames_only_a_whole_file(root: TargetRoot):
    with root.open_atomic("directors/d1/config.yaml", mode=0o640) as out:
        out.write(b"ring: r1\n")
        assert not root.exists("directors/d1/config.yaml")
        assert root.exists(partial_relpath("directors/d1/config.yaml"))
        assert partial_relpath("directors/d1/config.yaml") == "directors/d1/.config.yaml" + PARTIAL_SUFFIX
    assert root.read_bytes("directors/d1/config.yaml") == b"ring: r1\n"
    assert stat.S_IMODE(os.stat(root.resolve("directors/d1/config.yaml")).st_mode) == 0o640
    assert set(root.listing()) == {"directors", "directors/d1", "directors/d1/config.yaml"}


def test_open_atomic_error_leaves_nothing(root: TargetRoot):
    root.write_bytes_atomic("a/old.txt", b"old")
    with pytest.raises(RuntimeError), root.open_atomic("a/old.txt") as out:
        out.write(b"new but incomplete")
        raise RuntimeError("killed")
    assert root.read_bytes("a/old.txt") == b"old"
    with pytest.raises(RuntimeError), root.open_atomic("a/new.txt") as out:
        out.write(b"x")
        raise RuntimeError("killed")
    assert not root.exists("a/new.txt")
    assert set(root.listing()) == {"a", "a/old.txt"}


def test_leftover_partials_are_overwritten_and_swept(tmp_path: Path):
    root = TargetRoot(str(tmp_path))
    root.makedirs("x/y")
    (tmp_path / "x/y" / (".f" + PARTIAL_SUFFIX)).write_bytes(b"junk from a killed run")
    (tmp_path / "x" / (".g" + PARTIAL_SUFFIX)).write_bytes(b"junk")
    root.write_bytes_atomic("x/y/f", b"whole")
    assert root.read_bytes("x/y/f") == b"whole"
    assert root.remove_partials() == ["x/.g" + PARTIAL_SUFFIX]
    assert set(root.listing()) == {"x", "x/y", "x/y/f"}


def test_makedirs_with_mode_size_exists(root: TargetRoot):
    root.makedirs(f"{FILES}/pg_tblspc", 0o700)
    assert stat.S_IMODE(os.stat(root.resolve(f"{FILES}/pg_tblspc")).st_mode) == 0o700
    root.write_bytes_atomic(f"{FILES}/PG_VERSION", b"16\n", mtime=1_700_000_000)
    assert root.size(f"{FILES}/PG_VERSION") == 3
    assert root.size(f"{FILES}/pg_tblspc") is None
    assert root.size(f"{FILES}/nothing") is None
    assert os.stat(root.resolve(f"{FILES}/PG_VERSION")).st_mtime == 1_700_000_000


def test_symlinks_stay_inside_their_files_tree(tmp_path: Path):
    root = TargetRoot(str(tmp_path))
    root.write_bytes_atomic(f"{FILES}/logs/2026-01-01.log", b"log")
    root.symlink(f"{FILES}/logs/current.log", "2026-01-01.log")
    root.symlink(f"{FILES}/latest", "logs/2026-01-01.log")
    root.symlink(f"{FILES}/latest", "logs/2026-01-01.log")  # again: idempotent
    root.symlink(f"{FILES}/logs/current.log", "../logs/2026-01-01.log")  # replaced
    assert os.readlink(tmp_path / FILES / "logs/current.log") == "../logs/2026-01-01.log"
    for link, target in [
        (f"{FILES}/escape", "../volume.yaml"),
        (f"{FILES}/logs/escape", "../../../other/files/x"),
        (f"{FILES}/abs", "/etc/passwd"),
        (f"{FILES}/self", "."),
        ("volumes/app/vol/outside", "files/x"),
        ("directors/d1/link", "config.yaml"),
        (f"{FILES}/bs", "a\\b"),
    ]:
        with pytest.raises(UnsafePathError):
            root.symlink(link, target)
        assert not os.path.lexists(tmp_path / link)


def test_no_write_through_a_symlinked_folder(tmp_path: Path):
    root = TargetRoot(str(tmp_path))
    root.makedirs(f"{FILES}/real")
    root.symlink(f"{FILES}/link", "real")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        root.write_bytes_atomic(f"{FILES}/link/file", b"x")
    with pytest.raises(UnsafePathError):
        TargetRoot(str(tmp_path)).makedirs(f"{FILES}/link/sub")
    assert os.listdir(tmp_path / FILES / "real") == []


def test_target_error_names_root_and_path(tmp_path: Path):
    root = TargetRoot(str(tmp_path))
    root.makedirs("a/b")
    with pytest.raises(TargetError, match=r"a/b"):
        root.write_bytes_atomic("a/b", b"a folder is in the way")


def test_memory_target(tmp_path: Path):
    root = TargetRoot(f"memory://omni-test-{uuid.uuid4().hex}/node-a")
    assert not root.is_local and not root.supports_symlinks
    root.write_bytes_atomic("keys/ca.crt", b"PEM")
    with pytest.raises(RuntimeError), root.open_atomic("keys/ca.key") as out:
        out.write(b"half")
        raise RuntimeError("killed")
    with root.open_atomic("orchestrators/o1/db/users.jsonl") as out:
        out.write(b"{}\n")
        assert not root.exists("orchestrators/o1/db/users.jsonl")
    root.makedirs(f"{FILES}/empty")
    assert root.read_bytes("keys/ca.crt") == b"PEM"
    assert root.size("orchestrators/o1/db/users.jsonl") == 3
    assert not root.exists("keys/ca.key")
    files = {p for p, e in root.listing().items() if e.type == "file"}
    assert files == {"keys/ca.crt", "orchestrators/o1/db/users.jsonl"}
    assert f"{FILES}/empty" in root.listing()
    with pytest.raises(TargetError, match="cannot hold symbolic links"):
        root.symlink(f"{FILES}/l", "empty")
    with pytest.raises(UnsafePathError):
        root.write_bytes_atomic("../escape", b"x")
    assert root.remove_partials() == []


def test_chmod_never_follows_a_symlink(tmp_path: Path):
    root = TargetRoot(str(tmp_path))
    root.write_bytes_atomic(f"{FILES}/data", b"x", mode=0o600)
    root.symlink(f"{FILES}/link", "data")
    root.chmod(f"{FILES}/link", 0o777)
    assert stat.S_IMODE(os.stat(tmp_path / FILES / "data").st_mode) == 0o600


def test_a_second_live_writer_of_the_same_path_is_refused(tmp_path: Path):
    root = TargetRoot(str(tmp_path))
    first = root.begin("a/f")
    first.write(b"one")
    with pytest.raises(TargetError, match="another writer"):
        TargetRoot(str(tmp_path)).begin("a/f")
    first.commit()
    assert root.read_bytes("a/f") == b"one"
    root.write_bytes_atomic("a/f", b"two")  # once the first writer is done, the path is free again
    assert root.read_bytes("a/f") == b"two"
    assert set(root.listing()) == {"a", "a/f"}


def test_free_space_is_the_filesystem_s_even_before_the_root_is_made(tmp_path: Path):
    made = TargetRoot(str(tmp_path / "made"))
    later = TargetRoot(str(tmp_path / "not" / "yet" / "made"), create=False)
    space, before = made.free_space(), later.free_space()
    assert space is not None and before is not None
    assert not (tmp_path / "not").exists(), "asking makes nothing"
    assert space.device == before.device == os.stat(tmp_path).st_dev
    vfs = os.statvfs(tmp_path)
    assert abs(space.free - vfs.f_bavail * vfs.f_frsize) < 64 << 20  # other writers run meanwhile
    assert TargetRoot(f"memory://omni-test-{uuid.uuid4().hex}/node-a").free_space() is None


@pytest.mark.parametrize("local", [True, False], ids=["local", "memory"])
def test_listing_under_a_folder_keeps_paths_relative_to_the_root(tmp_path: Path, local: bool):
    url = str(tmp_path / "node") if local else f"memory://omni-test-{uuid.uuid4().hex}/node"
    root = TargetRoot(url)
    root.write_bytes_atomic(f"{FILES}/a/b.txt", b"b")
    root.write_bytes_atomic("volumes/app/other/files/c.txt", b"c")
    under = root.listing(under=FILES)
    assert {p for p, e in under.items() if e.type == "file"} == {f"{FILES}/a/b.txt"}
    assert set(under) <= {f"{FILES}/a", f"{FILES}/a/b.txt"}
    assert root.listing(under="volumes/app/none") == {}


@pytest.mark.parametrize("name", ["x" * 255, "漢" * 85, "é" * 120 + "x"])
def test_a_name_at_the_length_limit_gets_a_temporary_name_that_fits(tmp_path: Path, name: str):
    partial = posixpath.basename(partial_relpath(f"a/{name}"))
    assert len(partial.encode()) <= 255 and partial.startswith(".") and partial.endswith(PARTIAL_SUFFIX)
    assert partial == posixpath.basename(partial_relpath(f"b/{name}")), "the same name, the same partial"
    assert partial != posixpath.basename(partial_relpath(f"a/{name[:-1]}y")), "one per name"
    root = TargetRoot(str(tmp_path / "node"))
    leftover = tmp_path / "node" / "a" / partial
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"a killed writer's")
    root.write_bytes_atomic(f"a/{name}", b"whole")
    assert (tmp_path / "node" / "a" / name).read_bytes() == b"whole" and not leftover.exists()
    assert partial_relpath("a/short.txt") == "a/.short.txt" + PARTIAL_SUFFIX
