"""OpenSSH's ssh as the data channel of an SSH root (targets/ssh_stream.py), against OpenSSH's sshd on
127.0.0.1: the same tree as with every byte over asyncssh's SFTP, the pinned host key or nothing, a
connection dropped mid-file named, nothing put in place, and the file whole on the rerun."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from omni_recovery.restorer.files import restore_files
from omni_recovery.targets.driver import PARTIAL_SUFFIX, TargetError
from omni_recovery.targets.ssh import SshRoot, SshUrl
from omni_recovery.targets.ssh_partial import StreamedPartialFile
from omni_recovery.targets.ssh_stream import SSH, channel_for
from tests.backupset.conftest import DemoSet
from tests.restorer.conftest import assert_same_tree, set_items, snapshot
from tests.targets.sftp_servers import OpenSshServer, SftpServer, new_key, public_line

pytestmark = pytest.mark.skipif(SSH is None, reason="OpenSSH's ssh is not installed (openssh-client)")


def test_a_restore_through_openssh_s_ssh_equals_one_over_asyncssh_s_sftp(
    demo_set: DemoSet, openssh: OpenSshServer, tmp_path: Path
):
    items, key = set_items(demo_set.output)
    trees = {}
    for data_channel in ("openssh", "sftp"):
        onto = tmp_path / data_channel
        access = openssh.access(data_channel=data_channel)
        root = SshRoot(openssh.url(str(onto)), access)
        restore_files(items, root, key, parallel=2)
        assert_same_tree(demo_set.env, onto)
        trees[data_channel] = snapshot(onto)
    assert trees["openssh"] == trees["sftp"]
    channel = channel_for(root.target, openssh.access(), root.url)
    files = [rel for rel, (kind, *_rest) in trees["openssh"].items() if kind == "file"]
    assert channel is not None and channel.files == len(files), "every file of the first went by ssh"


def test_openssh_s_ssh_refuses_a_host_that_cannot_prove_the_pinned_key(
    openssh: OpenSshServer, tmp_path: Path
):
    pinned = public_line(new_key())
    url = openssh.url(str(tmp_path / "onto"))
    with pytest.raises(TargetError, match="nothing was sent") as caught:
        channel_for(SshUrl.parse(url), openssh.access(host_key=pinned), url)
    assert url in str(caught.value) and "Host key verification failed" in str(caught.value)
    assert "Accepted" not in (openssh.folder / "sshd.log").read_text(), "the client never logged in"
    assert not (tmp_path / "onto").exists()


def test_sshd_killed_mid_file_is_named_nothing_is_put_in_place_and_the_rerun_writes_it_whole(
    openssh: OpenSshServer, tmp_path: Path
):
    onto, url = tmp_path / "onto", openssh.url(str(tmp_path / "onto"))
    content = os.urandom(32 << 20)
    root = SshRoot(url, openssh.access())
    out = root.begin("volumes/big.bin", len(content))
    assert isinstance(out, StreamedPartialFile)
    out.write(content[: 1 << 20])
    openssh.stop()
    with pytest.raises(TargetError, match="the connection dropped") as caught:
        out.write(content[1 << 20 :])
        out.commit(mode=0o600)
    assert url in str(caught.value) and "volumes/.big.bin" in str(caught.value)
    assert not (onto / "volumes/big.bin").exists()

    openssh.start()  # back, with the same host key
    again = root.begin("volumes/big.bin", len(content))
    assert isinstance(again, StreamedPartialFile)
    again.write(content)
    again.commit(mode=0o600)
    assert (onto / "volumes/big.bin").read_bytes() == content
    assert not list(onto.rglob(f"*{PARTIAL_SUFFIX}"))


def test_a_host_whose_account_may_run_no_command_gets_every_byte_over_sftp(sftp_server: SftpServer):
    root = SshRoot(sftp_server.url("/node"), sftp_server.access(data_channel="openssh"))
    assert channel_for(root.target, root.access, root.url) is None
    out = root.begin("big.bin", 1 << 20)
    assert not isinstance(out, StreamedPartialFile)
    out.write(b"x" * (1 << 20))
    out.commit()
    assert (sftp_server.folder / "node/big.bin").read_bytes() == b"x" * (1 << 20)
