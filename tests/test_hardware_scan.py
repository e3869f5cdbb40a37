"""`inventory-scan` reads each node's machine: this one for a local root, the host of an SSH root
through its pinned session (asyncssh's test server and OpenSSH's sshd on 127.0.0.1, so this machine
too); the figures are checked against /proc and /sys read here directly, and the inventory it
writes loads back."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from omni_recovery.adapt.hardware_scan import Hardware, HardwareError, read_hardware
from omni_recovery.adapt.inventory import SshKeys, inventory_to_yaml, load_inventory, make_inventory
from omni_recovery.cli import main
from tests.targets.sftp_servers import OpenSshServer, SftpServer


def _sys_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def assert_is_this_machine(found: Hardware) -> None:
    """`found` against this machine's /proc and /sys, read here without the module's help."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    assert found.cores == sum(1 for line in cpuinfo if line.split(":")[0].strip() == "processor")
    total_kib = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
    assert total_kib is not None and found.memory_mib == int(total_kib.group(1)) // 1024
    disks = {}
    for block in Path("/sys/block").iterdir():
        size = int(_sys_text(block / "size") or 0) * 512
        if size and not block.name.startswith(("loop", "ram", "zram")):
            serial = _sys_text(block / "device" / "serial") or _sys_text(block / "serial")
            disks[block.name] = (size, _sys_text(block / "device" / "model"), serial)
    assert {d.device: (d.size_bytes, d.model, d.serial) for d in found.disks} == disks
    nics = {}
    for nic in Path("/sys/class/net").iterdir():
        mac = _sys_text(nic / "address")
        if len(mac) == 17 and mac != "00:00:00:00:00:00":
            nics[nic.name] = (mac, _sys_text(nic / "operstate"))
    assert {n.name: (n.mac, n.link) for n in found.nics} == nics
    assert found.disks and found.nics, "this machine has a disk and a NIC"


def test_the_local_machine_is_read_as_proc_and_sys_say(tmp_path: Path) -> None:
    assert_is_this_machine(read_hardware(f"file://{tmp_path}", None))


def test_an_asyncssh_host_is_read_through_its_session(sftp_servers: Callable[[str], SftpServer]) -> None:
    server = sftp_servers("node-a")
    server.behaviour.hardware = True
    assert_is_this_machine(read_hardware(server.url("/"), server.access()))
    assert "exec hardware" in server.events


def test_an_openssh_host_is_read_through_its_session(openssh: OpenSshServer) -> None:
    assert_is_this_machine(read_hardware(openssh.url(str(openssh.folder)), openssh.access()))


def test_a_host_that_runs_no_command_gives_no_figures(sftp_servers: Callable[[str], SftpServer]) -> None:
    server = sftp_servers("node-a")
    url = server.url("/")
    with pytest.raises(HardwareError, match=re.escape(url) + ".*would not run"):
        read_hardware(url, server.access())


def test_the_written_inventory_holds_the_figures_and_loads_back(
    tmp_path: Path, sftp_servers: Callable[[str], SftpServer]
) -> None:
    """One node over SSH (read), one whose host may run no command (left as recorded, the reason shown)."""
    read, mute = sftp_servers("read"), sftp_servers("mute")
    read.behaviour.hardware = True
    inventory = make_inventory([("there", 1, 1024, 1), ("mute", 3, 2048, 5)], root=f"file://{tmp_path}/r")
    nodes = tuple(
        dataclasses.replace(
            node, root=server.url("/"), ssh=SshKeys(server.host_key_line, str(server.client_key_file))
        )
        for node, server in zip(inventory.nodes, (read, mute), strict=True)
    )
    inventory = dataclasses.replace(inventory, nodes=nodes)
    given, written = tmp_path / "inventory.yaml", tmp_path / "scanned.yaml"
    given.write_text(inventory_to_yaml(inventory))

    result = CliRunner().invoke(
        main, ["inventory-scan", "--inventory", str(given), "--write-inventory", str(written)]
    )

    assert "Traceback" not in result.output and "wrote " in result.output, result.output
    assert result.exit_code == 1 and "the machine of 1 of 2 nodes could not be read" in result.output
    here = read_hardware(f"file://{tmp_path}", None)
    assert f"node there: {here.cores} cores, {here.memory_mib} MiB memory" in result.output
    assert f"node mute: {mute.url('/').rstrip('/')}: the host would not run" in result.output
    loaded = load_inventory(written)
    assert loaded.scanned_at and load_inventory(given).scanned_at is None  # plan-generate compares it
    there = loaded.node("there")
    assert (there.cpu_cores, there.memory_mib) == (here.cores, here.memory_mib)
    assert [(d.device, d.size_gib, d.model, d.serial) for d in there.disks] == [
        (d.device, d.size_bytes >> 30, d.model, d.serial) for d in here.disks if d.size_bytes >> 30
    ]
    assert [(n.name, n.mac) for n in there.nics] == [(n.name, n.mac) for n in here.nics]
    assert loaded.node("mute") == load_inventory(given).node("mute"), "kept as recorded"
    assert loaded.network == inventory.network and loaded.storage == inventory.storage
    assert not list(tmp_path.glob(".*.partial"))


def test_nodes_found_to_be_one_machine_are_named_in_the_written_inventory(tmp_path: Path) -> None:
    """Two local folders are one machine: its MACs twice, which the scan says must be fixed."""
    inventory = make_inventory([("a", 1, 1024, 1), ("b", 1, 1024, 1)], root=f"file://{tmp_path}/r")
    given, written = tmp_path / "inventory.yaml", tmp_path / "scanned.yaml"
    given.write_text(inventory_to_yaml(inventory))

    result = CliRunner().invoke(
        main, ["inventory-scan", "--inventory", str(given), "--write-inventory", str(written)]
    )

    assert "to fix in it before plan-generate" in result.output and "duplicate MAC" in result.output
    assert written.is_file() and "Traceback" not in result.output


def test_a_host_that_refuses_commands_but_serves_sftp_is_one_line_and_fails_the_scan(
    tmp_path: Path, sftp_servers: Callable[[str], SftpServer]
) -> None:
    """The server refuses the command channel itself (as a host with only SFTP allowed would): the
    root is ready, the node's machine unread, in one line naming the root; the exit status is 1."""
    server = sftp_servers("sftp-only")
    server.stop()
    server.behaviour.no_exec = True
    server.start()
    inventory = make_inventory(
        [("sftp-only", 1, 1024, 1)], root=f"file://{tmp_path}/r", storage=[("p", "ssd", 1)]
    )
    Path(inventory.storage[0].root.removeprefix("file://")).mkdir(parents=True)
    node = dataclasses.replace(
        inventory.nodes[0],
        root=server.url("/"),
        ssh=SshKeys(server.host_key_line, str(server.client_key_file)),
    )
    path = tmp_path / "inventory.yaml"
    path.write_text(inventory_to_yaml(dataclasses.replace(inventory, nodes=(node,))))

    result = CliRunner().invoke(main, ["inventory-scan", "--inventory", str(path)])

    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("node sftp-only:")]
    assert server.url("/").rstrip("/") in line and "refuses commands to this account (SFTP only" in line, line
    [root] = [line for line in result.output.splitlines() if line.startswith("node sftp-only ")]
    assert root.split()[2] == "yes" and "roots are not ready" not in result.output, root  # SFTP works
    assert "the machine of 1 of 1 nodes could not be read" in result.output
    assert not [event for event in server.events if event.startswith("exec")]


def test_an_openssh_host_that_forces_sftp_is_one_line_naming_the_root(openssh: OpenSshServer) -> None:
    """sshd with ForceCommand internal-sftp: SFTP works, a command gets an SFTP server instead."""
    openssh.stop()
    openssh.extra_config = "ForceCommand internal-sftp\n"
    openssh.start()
    url = openssh.url(str(openssh.folder))
    with pytest.raises(HardwareError, match=re.escape(url) + ".*serves SFTP only") as refused:
        read_hardware(url, openssh.access())
    assert "\n" not in str(refused.value)
