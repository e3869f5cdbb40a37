"""Format 1.1 fidelity: owners, modes, xattrs and ACLs, hard links, sparse files and nanosecond mtimes
survive backup create -> validate -> restore, as stat, getxattr, SEEK_DATA and du show them."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pycdlib
import pytest
import yaml

from omni_recovery.backupset import layout
from omni_recovery.backupset.attributes import FileAttributes, data_ranges
from omni_recovery.backupset.hashing import sha256_file
from omni_recovery.backupset.reader import IsoReader
from omni_recovery.backupset.signing import load_signing_key
from omni_recovery.envstate.demo import DemoOptions, write_demo_environment
from omni_recovery.restorer.attributes import LocalAccounts, owner_ids
from omni_recovery.restorer.files import RestoredFile, restore_files
from omni_recovery.targets import open_root
from omni_recovery.targets.driver import TargetRoot
from omni_recovery.targets.ssh import SshAccess
from omni_recovery.validate import validate
from omni_recovery.yaml_text import load_yaml
from tests.checker.tamper import copy_set, rebuild
from tests.demo_fixtures import PASSPHRASE, SMALL_SET, DemoSet, signed_set
from tests.restorer.conftest import assert_same_tree, set_items
from tests.targets.sftp_servers import OpenSshServer, SftpServer

GiB = 1 << 30
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="giving files to other owners needs root")
# POSIX ACL xattr entries (linux/posix_acl_xattr.h): tag, permissions, id.
ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
NO_ID = 0xFFFFFFFF
NS_MTIME = 1_700_000_000_123_456_789
NOBODY = 65534


def acl(*entries: tuple[int, int, int]) -> bytes:
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries)


def set_acls(tree: Path) -> bool:
    """An access ACL on a file and a default ACL on a folder; False where the filesystem has none."""
    access = acl(
        (ACL_USER_OBJ, 7, NO_ID),
        (ACL_USER, 5, 1234),
        (ACL_GROUP_OBJ, 4, NO_ID),
        (ACL_MASK, 5, NO_ID),
        (ACL_OTHER, 4, NO_ID),
    )
    try:
        os.setxattr(tree / "acl-file", "system.posix_acl_access", access)
        os.setxattr(tree / "shared", "system.posix_acl_default", access)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
            return False
        raise
    return True


def write_sparse(path: Path, size: int, ranges: list[tuple[int, int]]) -> None:
    with path.open("wb") as out:
        out.truncate(size)
        for offset, length in ranges:
            out.seek(offset)
            out.write(os.urandom(length))


def make_tree(tree: Path) -> bool:
    """The source tree of the issue; True when ACLs were set too."""
    tree.mkdir()
    (tree / "private").mkdir(mode=0o700)
    (tree / "private" / "secret").write_bytes(b"only the owner")
    (tree / "shared").mkdir()
    (tree / "sticky").mkdir()
    (tree / "sticky").chmod(0o1777)
    (tree / "setgid").mkdir()
    (tree / "setgid").chmod(0o2775)
    (tree / "setuid-tool").write_bytes(b"#!/bin/sh\n")
    (tree / "acl-file").write_bytes(b"acl")
    (tree / "tagged").write_bytes(b"with a user xattr")
    os.setxattr(tree / "tagged", "user.origin", b"billing\x00binary")
    os.setxattr(tree / "tagged", "trusted.origin", b"only an administrator sets this")
    (tree / "one").write_bytes(b"three names, one inode")
    os.link(tree / "one", tree / "two")
    os.link(tree / "one", tree / "private" / "three")
    write_sparse(
        tree / "disk.img", GiB, [(0, 64 << 10), (300 << 20, 128 << 10), (GiB - (64 << 10), 64 << 10)]
    )
    (tree / "precise").write_bytes(b"nanoseconds")
    for path, owner in {"private": (999, 999), "private/secret": (999, 999), "one": (1234, 4321)}.items():
        os.chown(tree / path, *owner)
    os.chown(tree / "shared", NOBODY, NOBODY)
    os.chmod(tree / "setuid-tool", 0o4755)  # after any chown, which clears it
    has_acls = set_acls(tree)
    for folder, _, files in os.walk(tree, topdown=False):  # children first: a folder's mtime last
        for name in [*files, ""]:
            os.utime(Path(folder) / name, ns=(NS_MTIME, NS_MTIME + int(name == "precise")))
    return has_acls


@dataclass(frozen=True)
class Seen:
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    size: int
    xattrs: dict[str, bytes]
    ranges: list[tuple[int, int]] | None
    sha256: str | None
    inode_names: frozenset[str] | None


def observe(tree: Path) -> dict[str, Seen]:
    """stat, getxattr, SEEK_DATA and the content digest of every entry of `tree`, by relative path;
    for files with several names, which names share the inode."""
    names: dict[int, set[str]] = {}
    found: dict[str, os.stat_result] = {}
    for folder, dirs, files in os.walk(tree):
        for name in dirs + files:
            rel = (Path(folder) / name).relative_to(tree).as_posix()
            found[rel] = os.lstat(tree / rel)
            names.setdefault(found[rel].st_ino, set()).add(rel)
    seen = {}
    for rel, st in found.items():
        path = tree / rel
        is_file = path.is_file()
        ranges = None
        if is_file:
            fd = os.open(path, os.O_RDONLY)
            ranges = data_ranges(fd, st.st_size)
            os.close(fd)
        xattrs = {
            n: os.getxattr(path, n, follow_symlinks=False) for n in os.listxattr(path, follow_symlinks=False)
        }
        seen[rel] = Seen(
            st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_size if is_file else 0, xattrs, ranges,
            sha256_file(path)[0] if is_file else None,
            frozenset(names[st.st_ino]) if is_file and st.st_nlink > 1 else None,
        )  # fmt: skip
    return seen


def du_bytes(path: Path) -> int:
    return int(
        subprocess.run(["du", "-B1", str(path)], check=True, capture_output=True, text=True).stdout.split()[0]
    )


@pytest.fixture(scope="module")
def fidelity_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoSet, str, bool]:
    """A backup set of a tiny demo environment whose first volume holds the issue's tree."""
    work = tmp_path_factory.mktemp("fidelity")
    env = work / "env"
    write_demo_environment(env, DemoOptions(volume_scale="tiny", applications=1, seed=3))
    volume = sorted((env / "volumes").glob("*/*/files"))[0]
    has_acls = make_tree(volume / "fidelity")
    return signed_set(env, work, SMALL_SET), volume.relative_to(env).as_posix() + "/fidelity", has_acls


@ROOT_ONLY
def test_a_restored_tree_is_the_backed_up_tree(fidelity_set: tuple[DemoSet, str, bool], tmp_path: Path):
    demo, tree, has_acls = fidelity_set
    assert validate(str(demo.output), demo.trusted, PASSPHRASE, deep=True).passed
    items, key = set_items(demo.output)
    copied: list[int] = []
    summary = restore_files(
        items, TargetRoot(str(tmp_path / "node")), key, progress=lambda phase, n: copied.append(n)
    )
    assert sum(copied) == summary.bytes_written < 1 << 20  # the data copied, not the 1 GiB with its holes
    want, got = observe(demo.env / tree), observe(tmp_path / "node" / tree)
    assert summary.not_applied == [] and summary.hardlinks == 2
    assert sorted(got) == sorted(want)
    for rel, seen in want.items():
        assert got[rel] == seen, rel
    assert has_acls == ("system.posix_acl_access" in got["acl-file"].xattrs)
    assert got["one"].inode_names == {"one", "two", "private/three"}
    assert len(got["disk.img"].ranges or []) == 3 and got["precise"].mtime_ns == NS_MTIME + 1
    assert du_bytes(tmp_path / "node" / tree / "disk.img") == du_bytes(demo.env / tree / "disk.img") < 1 << 20


@ROOT_ONLY
def test_a_file_is_reported_with_its_owner_mode_xattrs_and_mtime_already_in_place(
    fidelity_set: tuple[DemoSet, str, bool], tmp_path: Path
):
    """A file of one name and no holes gets all its metadata through its temporary file, before its
    rename: when it is reported (and so recorded), it is as the backup has it, to the nanosecond."""
    demo, tree, _ = fidelity_set
    items, key = set_items(demo.output)
    node = tmp_path / "node"
    at_report: dict[str, Seen] = {}

    def reported(done: RestoredFile) -> None:
        if done.path.startswith(f"{tree}/"):
            at_report[done.path.removeprefix(f"{tree}/")] = observe_one(node / done.path)

    restore_files(items, TargetRoot(str(node)), key, on_done=reported)
    want = {
        rel: dataclasses.replace(seen, ranges=None, sha256=None)
        for rel, seen in observe(demo.env / tree).items()
        if seen.sha256 is not None and seen.inode_names is None and rel != "disk.img"
    }
    assert {"precise", "private/secret", "setuid-tool", "tagged", "acl-file"} <= set(want)
    assert {rel: at_report[rel] for rel in want} == want


def observe_one(path: Path) -> Seen:
    st = os.lstat(path)
    xattrs = {n: os.getxattr(path, n) for n in os.listxattr(path)}
    return Seen(st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_size, xattrs, None, None, None)


@ROOT_ONLY
def test_independent_readers_see_owners_and_only_data_is_stored(fidelity_set: tuple[DemoSet, str, bool]):
    demo, tree, _ = fidelity_set
    prefix = f"data/{tree}/"
    rows = {}  # path in the tree -> bsdtar's columns: mode, links, uid, gid, size
    for iso in sorted(demo.output.glob("*volume-data*.iso")):
        listing = subprocess.run(["bsdtar", "-tvf", str(iso)], check=True, capture_output=True, text=True)
        for line in listing.stdout.splitlines():
            columns = line.split()
            if columns[-1].startswith(prefix):
                rows[columns[-1].removeprefix(prefix)] = columns[:5]
    assert rows["one"][2:4] == ["1234", "4321"] and rows["private/secret"][2:4] == ["999", "999"]
    assert rows["shared"][2:4] == [str(NOBODY)] * 2
    assert "two" not in rows and "private/three" not in rows  # later names: in the manifest only
    assert int(rows["disk.img"][4]) == 256 << 10  # the data ranges, not the 1 GiB
    holding = next(i for i in demo.output.glob("*volume-data*.iso") if f"{prefix}one" in bsdtar_paths(i))
    image = pycdlib.PyCdlib()
    image.open(str(holding))
    try:
        record: Any = image.get_record(rr_path=f"/{prefix}one")
        px = record.rock_ridge.dr_entries.px_record or record.rock_ridge.ce_entries.px_record
        assert (px.posix_file_links, px.posix_user_id, px.posix_group_id) == (3, 1234, 4321)
    finally:
        image.close()


def bsdtar_paths(iso: Path) -> str:
    return subprocess.run(["bsdtar", "-tf", str(iso)], check=True, capture_output=True, text=True).stdout


@ROOT_ONLY
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) drops capabilities")
def test_what_the_target_cannot_take_is_listed_per_file(
    fidelity_set: tuple[DemoSet, str, bool], tmp_path: Path
):
    """Restored by a process that may neither give files away nor set trusted.* attributes: content,
    modes, other xattrs and mtimes still come back; each owner and attribute not set is one line
    naming the file."""
    demo, tree, _ = fidelity_set
    not_applied = restore_without_capabilities(demo.output, tmp_path / "node", "chown", "sys_admin")
    assert f"{tree}/one: owner 1234:4321 not set: Operation not permitted" in not_applied
    assert f"{tree}/private: owner 999:999 not set: Operation not permitted" in not_applied
    assert f"{tree}/tagged: extended attribute trusted.origin not set: Operation not permitted" in not_applied
    restored = tmp_path / "node" / tree
    assert (restored / "disk.img").stat().st_size == GiB and du_bytes(restored / "disk.img") < 1 << 20
    assert os.lstat(restored / "precise").st_mtime_ns == NS_MTIME + 1
    assert os.getxattr(restored / "tagged", "user.origin") == b"billing\x00binary"
    assert (restored / "private").stat().st_mode & 0o7777 == 0o700


def restore_without_capabilities(location: Path, node: Path, *capabilities: str) -> list[str]:
    """restore_files run by a child process without `capabilities`: its not_applied lines."""
    script = textwrap.dedent(
        f"""
        import json
        from omni_recovery.restorer.files import RestoredFile, restore_files
        from omni_recovery.targets.driver import TargetRoot
        from tests.restorer.conftest import set_items
        items, key = set_items({str(location)!r})
        print(json.dumps(restore_files(items, TargetRoot({str(node)!r}), key).not_applied))
        """
    )
    dropped = ",".join(f"-{c}" for c in capabilities)
    command = ["setpriv", "--bounding-set", dropped, "--inh-caps", dropped, sys.executable, "-c", script]
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_owners_go_by_name_first_unless_numeric_ids_are_asked_for():
    known = FileAttributes(uid=4242, gid=4243, user="root", group="root")
    unknown = FileAttributes(uid=4242, gid=4243, user="no-such-user-here", group="no-such-group-here")
    assert owner_ids(known, numeric_owner=False) == (0, 0)
    assert owner_ids(known, numeric_owner=True) == (4242, 4243)
    assert owner_ids(unknown, numeric_owner=False) == (4242, 4243)
    assert owner_ids(FileAttributes(), numeric_owner=False) == (-1, -1)


def test_one_restore_looks_each_owner_name_up_once_and_keeps_the_answer():
    known = FileAttributes(uid=4242, gid=4243, user="root", group="root")
    unknown = FileAttributes(uid=4242, gid=4243, user="no-such-user-here", group="no-such-group-here")
    accounts = LocalAccounts()
    for _ in range(2):  # the second time from what the first kept, misses included
        assert owner_ids(known, False, accounts.user_id, accounts.group_id) == (0, 0)
        assert owner_ids(unknown, False, accounts.user_id, accounts.group_id) == (4242, 4243)
    assert accounts.user_id("no-such-user-here") is None
    assert (accounts.user_id("root"), accounts.group_id("root")) == (0, 0)


@ROOT_ONLY
@pytest.mark.parametrize(("numeric_owner", "expected"), [(False, (0, 0)), (True, (4242, 4343))])
def test_restore_gives_owners_by_name_unless_asked_for_numbers(
    fidelity_set: tuple[DemoSet, str, bool], tmp_path: Path, numeric_owner: bool, expected: tuple[int, int]
):
    """A file recorded as uid 4242 named root (another machine's numbering) belongs to this machine's
    root, unless numeric ids are asked for, as tar does."""
    demo, tree, _ = fidelity_set
    items, key = set_items(demo.output)
    path = f"{tree}/precise"
    renumbered = FileAttributes(uid=4242, gid=4343, user="root", group="root")
    items = [dataclasses.replace(i, attributes=renumbered) if i.path == path else i for i in items]
    restore_files(items, TargetRoot(str(tmp_path / "node")), key, numeric_owner=numeric_owner)
    st = os.lstat(tmp_path / "node" / path)
    assert (st.st_uid, st.st_gid) == expected


def test_a_link_whose_first_name_is_not_restored_is_restored_as_a_file_and_said(
    fidelity_set: tuple[DemoSet, str, bool], tmp_path: Path
):
    demo, tree, _ = fidelity_set
    items, key = set_items(demo.output)
    chosen = [i for i in items if i.path.startswith(f"{tree}/") and i.path != f"{tree}/one"]
    summary = restore_files(chosen, TargetRoot(str(tmp_path / "node")), key)
    node = tmp_path / "node" / tree
    assert not (node / "one").exists()
    assert (
        (node / "two").read_bytes() == (node / "private" / "three").read_bytes() == b"three names, one inode"
    )
    assert os.stat(node / "two").st_ino == os.stat(node / "private" / "three").st_ino  # still one inode
    said = (
        f"{tree}/private/three: restored as a separate file: its other name {tree}/one is not restored with"
    )
    said += " it"
    assert [line for line in summary.not_applied if "separate file" in line] == [said]


VERSION_1_1_FIELDS = ("uid", "gid", "user", "group", "xattrs", "hardlink", "sparse")


def as_version_1(manifest: dict[str, Any]) -> None:
    """The manifest as a version-1 writer makes it: no 1.1 field, whole-second mtimes."""
    manifest["format"] = layout.FORMAT
    for entry in manifest["files"]:
        for name in VERSION_1_1_FIELDS:
            entry.pop(name, None)
        if "mtime" in entry:
            entry["mtime"] = entry["mtime"].split(".")[0].rstrip("Z") + "Z"


def test_a_version_1_set_validates_and_restores_as_before(demo_set: DemoSet, tmp_path: Path):
    folder = copy_set(demo_set.output, tmp_path / "v1")
    key = load_signing_key(demo_set.key_path)
    for iso in sorted(folder.glob("*.iso")):
        with IsoReader(str(iso)) as reader:
            info = load_yaml(reader.backup_info_bytes) | {"format": layout.FORMAT}
        replace = {layout.BACKUP_INFO_PATH: yaml.safe_dump(info, sort_keys=False).encode()}
        rebuild(iso, key, replace=replace, edit_manifest=as_version_1)
    report = validate(str(folder), demo_set.trusted, PASSPHRASE, deep=True)
    assert report.passed and report.problems == [], report.to_text()
    items, data_key = set_items(folder)
    assert items and all(i.attributes is None for i in items)
    summary = restore_files(items, TargetRoot(str(tmp_path / "node")), data_key)
    assert summary.not_applied == [] and summary.hardlinks == 0
    assert_same_tree(demo_set.env, tmp_path / "node")


SFTP_NO_XATTRS = "SFTP cannot set extended attributes"


@ROOT_ONLY
@pytest.mark.parametrize("server", ["openssh", "sftp_server"])
def test_a_restore_over_ssh_gives_owners_and_hard_links_and_lists_each_xattr_not_set(
    fidelity_set: tuple[DemoSet, str, bool], server: str, request: pytest.FixtureRequest, tmp_path: Path
):
    """Over SFTP as root (OpenSSH's sshd, asyncssh's server): owners, modes and (whole-second) mtimes
    as backed up, one inode for the three names; each extended attribute (ACLs among them) one line
    naming the file, as SFTP has no call for them. The 1 GiB sparse file is left out: its holes are
    not what this is about."""
    demo, tree, _ = fidelity_set
    items, key = set_items(demo.output)
    chosen = [i for i in items if i.path.startswith(f"{tree}/") and i.path != f"{tree}/disk.img"]
    ssh: OpenSshServer | SftpServer = request.getfixturevalue(server)
    onto = ssh.folder / "onto"
    onto.mkdir()
    root = open_root(ssh.url(ssh.sftp_path("onto")), ssh.access())
    summary = restore_files(chosen, root, key)
    want, got = observe(demo.env / tree), observe(onto / tree)
    del want["disk.img"]
    assert sorted(got) == sorted(want) and summary.hardlinks == 2
    for rel, seen in want.items():
        shown = (got[rel].mode, got[rel].uid, got[rel].gid, got[rel].mtime_ns // 10**9, got[rel].sha256)
        assert shown == (seen.mode, seen.uid, seen.gid, seen.mtime_ns // 10**9, seen.sha256), rel
    assert got["one"].inode_names == {"one", "two", "private/three"}
    assert got["private"].uid == 999 and got["one"].gid == 4321  # not the restoring root's
    listed = [
        f"{tree}/{rel}: extended attribute {name} not set: {SFTP_NO_XATTRS}"
        for rel in want
        for name in want[rel].xattrs
    ]
    assert f"{tree}/tagged: extended attribute user.origin not set: {SFTP_NO_XATTRS}" in listed
    assert sorted(summary.not_applied) == sorted(listed)


@ROOT_ONLY
def test_owners_over_ssh_go_by_the_target_s_names_else_by_number(
    fidelity_set: tuple[DemoSet, str, bool], openssh: OpenSshServer, sftp_server: SftpServer, tmp_path: Path
):
    """A file recorded as uid 4242 named root: on a target whose account may run `getent` (sshd)
    it belongs to that host's root, unless numeric ids are asked for; where the account may run no
    command (the in-process server) the names cannot be looked up and the numbers are given."""
    demo, tree, _ = fidelity_set
    items, key = set_items(demo.output)
    path = f"{tree}/precise"
    renumbered = FileAttributes(uid=4242, gid=4343, user="root", group="root")
    chosen = [dataclasses.replace(i, attributes=renumbered) for i in items if i.path == path]

    def owner(root_url: str, access: SshAccess, served: Path, numeric_owner: bool) -> tuple[int, int]:
        summary = restore_files(chosen, open_root(root_url, access), key, numeric_owner=numeric_owner)
        assert summary.not_applied == []
        st = os.lstat(served / path)
        return st.st_uid, st.st_gid

    by_sshd = tmp_path / "by-sshd"
    assert owner(openssh.url(str(by_sshd)), openssh.access(), by_sshd, False) == (0, 0)
    assert owner(openssh.url(str(by_sshd)), openssh.access(), by_sshd, True) == (4242, 4343)
    served = sftp_server.folder / "node"
    assert owner(sftp_server.url("/node"), sftp_server.access(), served, False) == (4242, 4343)
