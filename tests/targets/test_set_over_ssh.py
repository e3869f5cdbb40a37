"""A backup set registered over SSH is validated, planned and restored (execute-plan, and a launch as
the UI makes it) by processes given no host key, which read it over SSH from the host key kept with the
registration, and restores the same tree as its local copy; a host that offers another key later is
refused naming both fingerprints."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from omni_recovery.adapt.inventory import Inventory, inventory_to_yaml, make_inventory
from omni_recovery.cli import main
from omni_recovery.targets.ssh import close_sessions
from omni_recovery.targets.ssh_fs import forget_ssh_locations
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.targets.sftp_servers import SftpServer, new_key
from tests.test_recovery import Setup
from tests.test_recovery_over_ssh import NODES, POOL, comparable
from tests.test_registered_sets import workspace  # noqa: F401
from tests.test_ui_launch import launch
from transforms.plan import plan_from_yaml

Trees = dict[str, dict[str, tuple[str, int, object, int]]]


def run(*args: str) -> Result:
    """One command, as a new process would run it: no host pinned, no connection left open."""
    close_sessions()
    forget_ssh_locations()
    return CliRunner().invoke(main, list(args), env={"OMNI_RECOVERY_PASSPHRASE": PASSPHRASE.decode()})


def registered_over_ssh(demo: DemoSet, server: SftpServer, ws: Path, *validate: str) -> str:
    """`demo`'s set served by `server`, registered from there with its host key (and, given `validate`
    options, deep-validated from there by a command given none); the set's URL."""
    shutil.copytree(demo.output, server.folder / "isos/t1")
    url = server.url("/isos/t1")
    ssh = ["--ssh-host-key", server.host_key_line, "--ssh-identity", str(server.client_key_file)]
    registered = run("register-isos", "--path", url, "--workspace", str(ws), "--quiet", *ssh, *validate)
    assert registered.exit_code == 0, registered.output
    if validate:
        validated = run("validate-isos", "--deep", "--workspace", str(ws), *validate)
        assert validated.exit_code == 0, validated.output
        assert f"validating registered backup set t1 in {url}" in validated.output
    return url


def planned(folder: Path, ws: Path, *path: str) -> tuple[Inventory, Path]:
    """plan-generate (of `path`, else the registered set) onto local folders under `folder`."""
    inventory = make_inventory(NODES, root=f"file://{folder}", storage=[POOL])
    folder.mkdir(parents=True)
    (folder / "inventory.yaml").write_text(inventory_to_yaml(inventory))
    plan = folder / "recovery-plan.yaml"
    args = ["--inventory", str(folder / "inventory.yaml"), "--output", str(plan), "--workspace", str(ws)]
    result = run("plan-generate", *path, *args)
    assert result.exit_code == 0, result.output
    return inventory, plan


def planned_and_restored(folder: Path, ws: Path, *path: str) -> Trees:
    """`planned`, then execute-plan; each root's tree as `comparable` has it."""
    inventory, plan = planned(folder, ws, *path)
    executed = run("execute-plan", "--plan", str(plan), "--workspace", str(ws))
    assert executed.exit_code == 0, executed.output
    roots = {n.name: n.root for n in inventory.nodes} | {p.name: p.root for p in inventory.storage}
    trees = {name: comparable(folder / f"targets/{name}", roots) for name, *_ in NODES}
    return trees | {POOL[0]: comparable(folder / f"storage/{POOL[0]}", roots)}


def trusted(demo: DemoSet) -> list[str]:
    return ["--trusted-key", str(demo.key_path) + ".pub"]


def test_a_set_registered_over_ssh_is_validated_planned_and_restored_over_ssh_as_its_local_copy(
    demo_set: DemoSet,
    sftp_server: SftpServer,
    tmp_path: Path,
    workspace: Path,  # noqa: F811
) -> None:
    registered_over_ssh(demo_set, sftp_server, workspace, *trusted(demo_set))
    read_for_validation = sftp_server.behaviour.read
    over_ssh = planned_and_restored(tmp_path / "over-ssh", workspace)
    assert sftp_server.behaviour.read > read_for_validation  # the plan and the restore read it there

    local = planned_and_restored(tmp_path / "local", workspace, "--path", str(demo_set.output))
    assert all(local.values()) and over_ssh == local


def test_a_ui_launch_of_the_restore_reads_a_set_registered_over_ssh_from_the_kept_host_key(
    demo_set: DemoSet,
    sftp_server: SftpServer,
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The `restore` job as the UI launches it, in a process that was given no host key."""
    registered_over_ssh(demo_set, sftp_server, workspace, *trusted(demo_set))
    folder = tmp_path / "ui"
    _, plan_path = planned(folder, workspace)
    close_sessions()
    forget_ssh_locations()
    monkeypatch.setenv("OMNI_RECOVERY_PASSPHRASE", PASSPHRASE.decode())
    read_before = sftp_server.behaviour.read

    plan = plan_from_yaml(plan_path.read_text())
    apps = sorted(s.id.split("/", 1)[1] for s in plan.steps if s.id.startswith("application/"))
    config = {"workspace": str(workspace), "plan_path": str(plan_path)}
    succeeded, failures = launch(Setup(demo_set, folder, plan_path, plan), workspace, config, apps)

    assert succeeded, failures
    assert sftp_server.behaviour.read > read_before and any((folder / "targets").rglob("*"))


def test_a_registered_host_that_offers_another_key_later_is_refused_naming_both_fingerprints(
    demo_set: DemoSet,
    sftp_server: SftpServer,
    workspace: Path,  # noqa: F811
) -> None:
    registered_over_ssh(demo_set, sftp_server, workspace)
    pinned = sftp_server.host_key.get_fingerprint()
    sftp_server.stop()
    sftp_server.host_key = new_key()  # the same address, another machine (or a man in the middle)
    sftp_server.start()
    read_before = sftp_server.behaviour.read

    refused = run("validate-isos", "--workspace", str(workspace))
    lines = [line for line in refused.output.splitlines() if line.startswith("error:")]
    assert refused.exit_code == 1 and len(lines) == 1 and "Traceback" not in refused.output, refused.output
    assert f"127.0.0.1:{sftp_server.port}" in lines[0] and f"expected {pinned}" in lines[0]
    assert f"the host offered {sftp_server.host_key.get_fingerprint()}" in lines[0]
    assert sftp_server.behaviour.read == read_before
