"""SSH target roots against real SSH servers on 127.0.0.1: asyncssh's SFTP server in this process (one
per node, each on its own port and folder) and OpenSSH's sshd where it is installed."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from omni_recovery.backup.post_recovery import gather
from omni_recovery.backupset.attributes import Sparse
from omni_recovery.errors import UnsafePathError
from omni_recovery.operator_identity import ssh_keys_used
from omni_recovery.restorer.files import RestoredFile, restore_files
from omni_recovery.restorer.sparse import SparseFile
from omni_recovery.targets import open_root
from omni_recovery.targets.driver import PARTIAL_SUFFIX, TargetError
from omni_recovery.targets.ssh import REMOTE_HASH_MIN, SshAccess, SshRoot
from tests.backupset.conftest import DemoSet
from tests.restorer.conftest import assert_same_tree, set_items, snapshot
from tests.targets.sftp_servers import OpenSshServer, SftpServer, free_port, new_key, public_line


def regular_files(folder: Path) -> list[str]:
    return sorted(rel for rel, (kind, *_rest) in snapshot(folder).items() if kind == "file")


@pytest.mark.parametrize("parallel", [1, 2])
def test_a_restore_onto_an_ssh_root_equals_the_environment(
    demo_set: DemoSet, sftp_server: SftpServer, parallel: int
):
    items, key = set_items(demo_set.output)
    (sftp_server.folder / "srv/omni").mkdir(parents=True)  # the parent of the root must be there
    root = SshRoot(sftp_server.url("/srv/omni/node-a"), sftp_server.access())
    summary = restore_files(items, root, key, parallel=parallel)
    assert summary.files and summary.symlinks and summary.dirs
    assert_same_tree(demo_set.env, sftp_server.folder / "srv/omni/node-a")


def test_a_restore_onto_openssh_hashes_on_the_target_and_equals_the_environment(
    demo_set: DemoSet, openssh: OpenSshServer, tmp_path: Path
):
    items, key = set_items(demo_set.output)
    onto = tmp_path / "onto"
    root = open_root(openssh.url(str(onto)), openssh.access())
    restore_files(items, root, key, parallel=2)
    assert_same_tree(demo_set.env, onto)
    big = os.urandom(REMOTE_HASH_MIN + 12345)
    root.write_bytes_atomic("big.bin", big, mode=0o600)
    assert isinstance(root, SshRoot) and root.session.can_hash, "sha256sum ran on the target"
    assert (onto / "big.bin").read_bytes() == big
    free = root.free_space()
    assert free is not None and free.free > 0


def test_a_byte_flipped_on_the_target_is_caught_and_nothing_is_renamed_into_place(
    demo_set: DemoSet, sftp_server: SftpServer
):
    sftp_server.behaviour.flip = True
    url = sftp_server.url("/node")
    root = SshRoot(url, sftp_server.access())
    with pytest.raises(TargetError, match="differ from those sent") as caught:
        root.write_bytes_atomic("etc/app.conf", b"setting = 1\n" * 100)
    assert url in str(caught.value) and "etc/app.conf" in str(caught.value)
    items, key = set_items(demo_set.output)
    with pytest.raises(TargetError, match="differ from those sent"):
        restore_files(items, root, key, parallel=2)
    assert regular_files(sftp_server.folder) == [], "no file, final or temporary, is left"


def test_a_byte_flipped_in_a_big_file_is_caught_by_the_target_s_own_sha256sum(sftp_server: SftpServer):
    sftp_server.behaviour.sha256sum = True
    root = SshRoot(sftp_server.url("/node"), sftp_server.access())
    good = os.urandom(REMOTE_HASH_MIN)
    root.write_bytes_atomic("good.bin", good)
    assert (sftp_server.folder / "node/good.bin").read_bytes() == good
    assert root.session.can_hash, "the target hashed it"
    sftp_server.behaviour.flip = True
    with pytest.raises(TargetError, match="differ from those sent") as caught:
        root.write_bytes_atomic("big.bin", os.urandom(REMOTE_HASH_MIN))
    assert "big.bin" in str(caught.value)
    assert [e for e in sftp_server.events if e.startswith("exec sha256sum -- /node/.big.bin")]
    assert not (sftp_server.folder / "node/big.bin").exists()
    assert regular_files(sftp_server.folder / "node") == ["good.bin"]


def test_a_host_that_cannot_prove_the_pinned_key_is_refused_before_anything_is_sent(
    sftp_server: SftpServer,
):
    pinned = public_line(new_key())
    with pytest.raises(TargetError) as caught:
        SshRoot(sftp_server.url("/node"), SshAccess(pinned, str(sftp_server.client_key_file)))
    message = str(caught.value)
    from asyncssh import import_public_key

    expected = import_public_key(pinned).get_fingerprint()
    offered = sftp_server.host_key.get_fingerprint()
    assert f"expected {expected}" in message and f"offered {offered}" in message
    assert sftp_server.events == [], "no user name, key or file reached the host"


def test_a_key_the_host_does_not_accept_is_refused_clearly(sftp_server: SftpServer, tmp_path: Path):
    other = tmp_path / "other_key"
    new_key(other)
    with pytest.raises(TargetError, match="refused the key") as caught:
        SshRoot(sftp_server.url("/node"), sftp_server.access(identity_file=str(other)))
    assert "127.0.0.1" in str(caught.value)


def test_a_port_where_nothing_listens_is_a_clear_connection_error(sftp_server: SftpServer):
    url = f"ssh://omni@127.0.0.1:{free_port()}/node"
    with pytest.raises(
        TargetError, match=r"cannot connect to omni@127\.0\.0\.1:\d+: connection refused"
    ) as caught:
        SshRoot(url, sftp_server.access())
    assert url in str(caught.value)


def test_a_root_whose_folder_does_not_exist_names_the_folder(sftp_server: SftpServer):
    with pytest.raises(TargetError, match="the folder /no/such/place does not exist on"):
        SshRoot(sftp_server.url("/no/such/place/node"), sftp_server.access())


def test_a_full_disk_names_the_path_and_leaves_no_file(sftp_server: SftpServer):
    root = SshRoot(sftp_server.url("/node"), sftp_server.access())
    sftp_server.behaviour.disk_full = True
    with pytest.raises(TargetError, match=r"(?i)no space left") as caught:
        root.write_bytes_atomic("data/big.bin", os.urandom(300_000))
    assert "data/.big.bin.omni-partial" in str(caught.value)
    assert regular_files(sftp_server.folder) == []


def test_a_folder_the_account_may_not_write_names_the_path(sftp_server: SftpServer):
    root = SshRoot(sftp_server.url("/node"), sftp_server.access())
    sftp_server.behaviour.deny = "node/locked"
    with pytest.raises(TargetError, match="permission denied") as caught:
        root.write_bytes_atomic("locked/file.txt", b"x")
    assert "locked/.file.txt.omni-partial" in str(caught.value)


def test_a_connection_dropped_mid_file_fails_naming_it_and_the_rerun_redoes_only_what_was_not_done(
    demo_set: DemoSet, sftp_server: SftpServer
):
    items, key = set_items(demo_set.output)
    url, folder = sftp_server.url("/node"), sftp_server.folder / "node"
    total = sum(i.size for i in items if i.type == "file")
    sftp_server.behaviour.drop_after = total * 3 // 4  # past the big files, which go first
    recorded: dict[str, int] = {}

    def record(done: RestoredFile) -> None:
        recorded[done.path] = os.stat(folder / done.path).st_ino

    with pytest.raises(TargetError, match="dropped") as caught:
        restore_files(items, SshRoot(url, sftp_server.access()), key, on_done=record, parallel=1)
    assert url in str(caught.value)
    first_pass = dict(recorded)
    assert first_pass, "some files were whole before the drop"
    sftp_server.behaviour.drop_after = None
    again: list[str] = []

    def record_again(done: RestoredFile) -> None:
        again.append(done.path)
        recorded[done.path] = os.stat(folder / done.path).st_ino

    again_root = SshRoot(url, sftp_server.access())
    restore_files(items, again_root, key, already_done=recorded.__contains__, on_done=record_again)
    assert_same_tree(demo_set.env, folder)
    assert not set(again) & set(first_pass), "a file verified before the drop was written again"
    for path, inode in first_pass.items():
        assert os.stat(folder / path).st_ino == inode, path


def test_a_symlink_on_the_way_is_never_written_through(sftp_server: SftpServer, tmp_path: Path):
    root = SshRoot(sftp_server.url("/node"), sftp_server.access())
    elsewhere = sftp_server.folder / "elsewhere"
    elsewhere.mkdir()
    (sftp_server.folder / "node/volumes").symlink_to("../elsewhere")
    with pytest.raises(UnsafePathError, match="symbolic link lies on the way"):
        root.write_bytes_atomic("volumes/app/vol/files/a.txt", b"x")
    assert list(elsewhere.iterdir()) == []


def test_listing_size_kind_and_the_sweep_of_temporary_files(sftp_server: SftpServer):
    root = SshRoot(sftp_server.url("/node"), sftp_server.access())
    root.write_bytes_atomic("vol/files/a.txt", b"abc", mode=0o640)
    root.makedirs("vol/files/empty", mode=0o700)
    leftover = sftp_server.folder / f"node/vol/files/.b.txt{PARTIAL_SUFFIX}"
    leftover.write_bytes(b"half")
    listing = root.listing("vol")
    written = listing["vol/files/a.txt"]
    assert written.size == 3 and stat.S_IMODE(written.mode or 0) == 0o640
    assert listing["vol/files/empty"].type == "dir"
    assert root.size("vol/files/a.txt") == 3 and root.size("vol/files/empty") is None
    assert root.kind("vol/files/empty") == "dir" and root.kind("vol/nothing") is None
    assert root.remove_partials() == [f"vol/files/.b.txt{PARTIAL_SUFFIX}"]
    assert not leftover.exists()
    assert root.listing("nothing-here") == {}


def local_free(folder: Path) -> int:
    vfs = os.statvfs(folder)
    return vfs.f_bavail * vfs.f_frsize


def test_free_space_is_the_target_filesystem_s(sftp_servers: Callable[[str], SftpServer]):
    one, two = sftp_servers("one"), sftp_servers("two")
    root = SshRoot(one.url("/node"), one.access())
    before = local_free(one.folder)
    space = root.free_space()
    after = local_free(one.folder)
    assert space is not None
    # Other processes write and delete meanwhile: the figure lies within what the disk had around it.
    assert min(before, after) - (64 << 20) <= space.free <= max(before, after) + (64 << 20)
    other = SshRoot(two.url("/node"), two.access()).free_space()
    assert other is not None and other.device != space.device, "two hosts never share a filesystem"
    again = SshRoot(one.url("/pool"), one.access()).free_space()
    assert again is not None and again.device == space.device, "two roots on one host's filesystem do"


def test_the_bandwidth_limit_paces_the_writes(sftp_server: SftpServer):
    root = SshRoot(sftp_server.url("/node"), sftp_server.access(bandwidth_limit=4 << 20))
    started = time.monotonic()
    with root.open_atomic("paced.bin") as out:
        for _ in range(8):
            out.write(os.urandom(256 << 10))
    # 2 MiB at 4 MiB/s cannot take less than half a second (the first block goes at once).
    assert time.monotonic() - started >= 0.5 - 0.0625
    assert (sftp_server.folder / "node/paced.bin").stat().st_size == 2 << 20


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to other owners needs root")
@pytest.mark.parametrize("server", ["openssh", "sftp_server"])
def test_an_owner_is_given_to_a_symlink_itself(server: str, request: pytest.FixtureRequest):
    """lchown semantics (lsetstat@openssh.com): the link gets the owner, not what it points to."""
    ssh: OpenSshServer | SftpServer = request.getfixturevalue(server)
    (ssh.folder / "onto").mkdir()
    root = SshRoot(ssh.url(ssh.sftp_path("onto")), ssh.access())
    files = "volumes/app/data/files"
    root.write_bytes_atomic(f"{files}/target.txt", b"pointed at", mode=0o644)
    root.symlink(f"{files}/link", "target.txt")
    assert root.lchown(f"{files}/link", 1234, 4321) is None
    assert root.lchown(f"{files}/target.txt", 2345, -1) is None  # -1: the group stays as it is
    link, pointed = (
        os.lstat(ssh.folder / "onto" / files / "link"),
        os.lstat(ssh.folder / "onto" / files / "target.txt"),
    )
    assert (link.st_uid, link.st_gid) == (1234, 4321)
    assert (pointed.st_uid, pointed.st_gid) == (2345, 0)


@pytest.mark.parametrize("server", ["sftp_server", "openssh"])
def test_the_post_recovery_gather_streams_an_ssh_file_with_its_mode_and_mtime(
    server: str, request: pytest.FixtureRequest, tmp_path: Path
):
    """A file 48 MiB long is copied out with never more than a few MiB of it in memory (it used to be
    read whole), and keeps its mode and mtime."""
    ssh: SftpServer | OpenSshServer = request.getfixturevalue(server)
    onto = ssh.folder / "srv/node"
    big = onto / "volumes/app/data/files/big.bin"
    big.parent.mkdir(parents=True)
    content = os.urandom(1 << 20)
    with open(big, "wb") as fh:
        fh.write(content)
        fh.seek(47 << 20)
        fh.write(content)
    big.chmod(0o640)
    os.utime(big, (1_600_000_000, 1_600_000_000))
    root = SshRoot(ssh.url(ssh.sftp_path("srv/node")), ssh.access(), create=False)
    into = tmp_path / "gathered"
    tracemalloc.start()
    try:
        gather(root, into)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    copied = into / "volumes/app/data/files/big.bin"
    assert copied.read_bytes() == big.read_bytes()
    assert stat.S_IMODE(copied.stat().st_mode) == 0o640 and copied.stat().st_mtime == 1_600_000_000
    assert peak < 16 << 20, f"{peak / 2**20:.0f} MiB held at once while copying a 48 MiB file"


@pytest.fixture
def ssh_agent(tmp_path: Path, client_key: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """OpenSSH's ssh-agent holding the client key, as SSH_AUTH_SOCK; no key in ~/.ssh to fall back on."""
    if shutil.which("ssh-agent") is None or shutil.which("ssh-add") is None:
        pytest.skip("no ssh-agent here (Debian's openssh-client)")
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120  # a loaded machine starts the agent slowly
        while not sock.exists():
            assert agent.poll() is None and time.monotonic() < deadline, "ssh-agent made no socket"
            time.sleep(0.02)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        subprocess.run(["ssh-add", "-q", str(client_key)], check=True, capture_output=True)
        yield sock
    finally:
        agent.kill()
        agent.wait()


def test_a_key_from_the_ssh_agent_logs_in_and_its_fingerprint_is_noted(
    sftp_server: SftpServer, ssh_agent: Path, client_key: Path
):
    root = SshRoot(sftp_server.url("/node"), sftp_server.access(identity_file=None))
    root.write_bytes_atomic("a.txt", b"through the agent's key\n")
    assert (sftp_server.folder / "node/a.txt").read_bytes() == b"through the agent's key\n"
    shown = subprocess.run(["ssh-keygen", "-l", "-f", f"{client_key}.pub"], capture_output=True, text=True)
    assert ssh_keys_used()[sftp_server.url("").removeprefix("ssh://")] == shown.stdout.split()[1]


@pytest.mark.parametrize("server", ["sftp_server", "openssh"])
def test_a_sparse_file_is_written_over_ssh_with_zeros_for_its_holes(
    server: str, request: pytest.FixtureRequest
):
    """Over SFTP (asyncssh's server) and by ssh (sshd): the data ranges where they belong, the holes
    and the tail after the last range as zeros, the file renamed into place whole."""
    ssh: OpenSshServer | SftpServer = request.getfixturevalue(server)
    root = SshRoot(ssh.url(ssh.sftp_path("onto")), ssh.access())
    first, second = os.urandom(5000), os.urandom(3000)
    out = SparseFile(root, "disk.img", Sparse(((4096, 5000), (1 << 20, 3000)), 2 << 20, ""))
    out.write(first + second)
    out.commit(mode=0o600)
    expected = bytes(4096) + first + bytes((1 << 20) - 9096) + second + bytes((1 << 20) - 3000)
    assert (ssh.folder / "onto/disk.img").read_bytes() == expected
    assert regular_files(ssh.folder / "onto") == ["disk.img"]
