"""`inventory-scan` probes every root of an inventory as execute-plan would reach it: a local folder
and SSH servers on 127.0.0.1 (asyncssh's, and OpenSSH's sshd where installed), one whose host key
is not the pinned one, one where nothing listens, and a root folder not made yet."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from omni_recovery.adapt.inventory import SshKeys, inventory_to_yaml, make_inventory
from omni_recovery.adapt.scan import PROBE, scan_inventory
from omni_recovery.cli import main
from tests.targets.sftp_servers import OpenSshServer, SftpServer, free_port, new_key, public_line

NODES = [(name, 8, 16384, 100) for name in ("local", "over-ssh", "impostor", "silent")]


def test_every_root_is_probed_and_each_failure_named(
    tmp_path: Path, sftp_servers: Callable[[str], SftpServer]
) -> None:
    local = tmp_path / "local-root"
    local.mkdir()
    good, impostor = sftp_servers("good"), sftp_servers("impostor")
    (good.folder / "srv").mkdir()
    (impostor.folder / "srv").mkdir()
    pinned = SshKeys(good.host_key_line, str(good.client_key_file))
    roots = {
        "local": (f"file://{local}", None),
        "over-ssh": (good.url("/srv"), pinned),
        "impostor": (impostor.url("/srv"), SshKeys(public_line(new_key()), str(good.client_key_file))),
        "silent": (f"ssh://omni@127.0.0.1:{free_port()}/srv", pinned),
    }
    inventory = make_inventory(NODES, root=f"file://{tmp_path}", storage=[("fast", "nvme", 100)])
    nodes = [dataclasses.replace(n, root=roots[n.name][0], ssh=roots[n.name][1]) for n in inventory.nodes]
    pool = dataclasses.replace(inventory.storage[0], root=good.url("/pool-not-made"), ssh=pinned)
    inventory = dataclasses.replace(inventory, nodes=tuple(nodes), storage=(pool,))

    scans = {scan.name: scan for scan in scan_inventory(inventory)}

    here = scans["local"]
    vfs = os.statvfs(local)
    assert here.ready and here.fsync
    assert here.free_bytes is not None and abs(here.free_bytes - vfs.f_bavail * vfs.f_frsize) < 64 << 20
    remote = scans["over-ssh"]
    assert remote.ready and remote.fsync
    served = os.statvfs(good.folder)
    assert (
        remote.free_bytes is not None
        and abs(remote.free_bytes - served.f_bavail * served.f_frsize) < 64 << 20
    )
    assert (
        not scans["impostor"].reachable and "did not prove the pinned host key" in scans["impostor"].problem
    )
    assert not any(e.startswith("open") for e in impostor.events), (
        "nothing asked of a host that failed its key"
    )
    assert not scans["silent"].reachable and "connection refused" in scans["silent"].problem
    assert scans["fast"].reachable and not scans["fast"].ready
    assert "not there yet" in scans["fast"].problem and not (good.folder / "pool-not-made").exists()
    assert not (local / PROBE).exists() and not list(good.folder.glob("srv/.omni*")), "the probes are removed"

    path = tmp_path / "inventory.yaml"
    path.write_text(inventory_to_yaml(inventory))
    result = CliRunner().invoke(main, ["inventory-scan", "--inventory", str(path)])
    assert result.exit_code == 1 and "3 of 5 roots are not ready" in result.output
    lines = result.output.splitlines()
    assert any(line.startswith("node local ") and " yes " in line for line in lines)
    assert any(line.strip().startswith("node impostor: ") for line in lines)
    assert "Traceback" not in result.output


def test_an_openssh_root_is_ready(openssh: OpenSshServer, tmp_path: Path) -> None:
    onto = tmp_path / "onto"
    onto.mkdir()
    inventory = make_inventory(NODES[:1], root=f"file://{tmp_path}", storage=[])
    node = dataclasses.replace(
        inventory.nodes[0],
        root=openssh.url(str(onto)),
        ssh=SshKeys(openssh.host_key_line, str(openssh.client_key_file)),
    )
    [scan] = scan_inventory(dataclasses.replace(inventory, nodes=(node,)))
    assert scan.ready and scan.fsync, scan
    assert not list(onto.iterdir()), "the probe is removed"


def test_a_ready_inventory_exits_0(tmp_path: Path) -> None:
    inventory = make_inventory(NODES[:1], root=f"file://{tmp_path}/roots", storage=[("fast", "nvme", 100)])
    for root in [n.root for n in inventory.nodes] + [p.root for p in inventory.storage]:
        Path(root.removeprefix("file://")).mkdir(parents=True)
    path = tmp_path / "inventory.yaml"
    path.write_text(inventory_to_yaml(inventory))
    result = CliRunner().invoke(main, ["inventory-scan", "--inventory", str(path)])
    assert result.exit_code == 0, result.output
    assert "all 2 roots are ready" in result.output
