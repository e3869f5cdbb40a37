"""plan-generate compares the machines an inventory records with the machines its nodes are on: every
ssh:// node, and every node of an inventory inventory-scan wrote; a hand-written inventory's file://
nodes carry made-up figures and are left alone. The SSH hosts are asyncssh servers on 127.0.0.1 that
read this machine's /proc and /sys."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from omni_recovery.adapt.hardware_changes import changed_hardware
from omni_recovery.adapt.hardware_scan import read_hardware, with_hardware, write_inventory
from omni_recovery.adapt.inventory import SshKeys, inventory_to_yaml, load_inventory, make_inventory
from omni_recovery.cli import main
from tests.backupset.conftest import DemoSet
from tests.targets.sftp_servers import SftpServer, free_port, new_key, public_line
from tests.test_recovery_over_ssh import NODES, POOL


def test_a_hand_written_inventory_s_local_nodes_are_not_compared(tmp_path: Path) -> None:
    inventory = make_inventory([("a", 999, 1, 1), ("b", 1, 999999, 1)], root=f"file://{tmp_path}")
    compared = changed_hardware(inventory)
    assert compared.changes == [] and compared.unread == {}


def test_a_scanned_inventory_matches_until_a_figure_is_changed_which_is_named(tmp_path: Path) -> None:
    here = read_hardware(f"file://{tmp_path}", None)
    inventory = make_inventory([("local", 1, 1024, 1)], root=f"file://{tmp_path}")
    path = tmp_path / "scanned.yaml"
    write_inventory(path, with_hardware(inventory, {"local": here}))
    scanned = load_inventory(path)
    assert scanned.scanned_at and changed_hardware(scanned).changes == []

    [node] = scanned.nodes
    edited = dataclasses.replace(scanned, nodes=(dataclasses.replace(node, memory_mib=node.memory_mib * 2),))
    [change] = changed_hardware(edited).changes
    assert str(change) == f"node local: memory_mib recorded {here.memory_mib * 2}, found {here.memory_mib}"


def test_an_ssh_node_that_does_not_answer_is_not_compared_and_says_why(tmp_path: Path) -> None:
    inventory = make_inventory([("gone", 1, 1024, 1)], root=f"file://{tmp_path}")
    keys = SshKeys(public_line(new_key()))
    node = dataclasses.replace(inventory.nodes[0], root=f"ssh://omni@127.0.0.1:{free_port()}/srv", ssh=keys)
    compared = changed_hardware(dataclasses.replace(inventory, nodes=(node,)))
    assert compared.changes == [] and "not reached" in compared.unread["gone"]


def test_plan_generate_refuses_an_ssh_node_whose_machine_changed_unless_accepted(
    demo_set: DemoSet, tmp_path: Path, sftp_servers: Callable[[str], SftpServer]
) -> None:
    server = sftp_servers("big-0")
    server.behaviour.hardware = True
    inventory = make_inventory(NODES, root=f"file://{tmp_path}", storage=[POOL])
    keys = SshKeys(server.host_key_line, str(server.client_key_file))
    first = dataclasses.replace(inventory.nodes[0], root=server.url("/srv"), ssh=keys)
    path = tmp_path / "inventory.yaml"
    path.write_text(inventory_to_yaml(dataclasses.replace(inventory, nodes=(first, *inventory.nodes[1:]))))
    here = read_hardware(f"file://{tmp_path}", None)
    plan = tmp_path / "plan.yaml"
    args = ["plan-generate", "--path", str(demo_set.output), "--inventory", str(path), "--output", str(plan)]
    args += ["--no-store", "--workspace", str(tmp_path / "ws")]

    refused = CliRunner().invoke(main, args)

    assert refused.exit_code == 1 and "Traceback" not in refused.output, refused.output
    [line] = refused.output.strip().splitlines()
    assert f"node big-0: cpu_cores recorded 64, found {here.cores}" in line
    assert f"node big-0: memory_mib recorded 524288, found {here.memory_mib}" in line
    assert "--accept-changed-hardware" in line and not plan.exists()

    accepted = CliRunner().invoke(main, [*args, "--accept-changed-hardware"])
    assert accepted.exit_code == 0, accepted.output
    assert f"as accepted: node big-0: cpu_cores recorded 64, found {here.cores}" in accepted.output
    assert plan.is_file()
