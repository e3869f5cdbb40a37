"""A backup set registered over SSH is validated, planned and restored by commands that read it over SSH
from the host key kept with the registration, and restores the same tree as its local copy; a host that
offers another key later is refused naming both fingerprints."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner, Result

from omni_recovery.adapt.inventory import inventory_to_yaml, make_inventory
from omni_recovery.cli import main
from omni_recovery.targets.ssh import close_sessions
from omni_recovery.targets.ssh_fs import forget_ssh_locations
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.targets.sftp_servers import SftpServer, new_key
from tests.test_recovery_over_ssh import NODES, POOL, comparable
from tests.test_registered_sets import workspace  # noqa: F401


def run(*args: str) -> Result:
    """One command, as a new process would run it: no host pinned, no connection left open."""
    close_sessions()
    forget_ssh_locations()
    return CliRunner().invoke(main, list(args), env={"OMNI_RECOVERY_PASSPHRASE": PASSPHRASE.decode()})


Trees = dict[str, dict[str, tuple[str, int, object, int]]]


def planned_and_restored(folder: Path, ws: Path, *path: str) -> Trees:
    """plan-generate (of `path`, else the registered set) onto local folders under `folder`, then
    execute-plan; each root's tree as `comparable` has it."""
    inventory = make_inventory(NODES, root=f"file://{folder}", storage=[POOL])
    folder.mkdir(parents=True)
    (folder / "inventory.yaml").write_text(inventory_to_yaml(inventory))
    plan = str(folder / "recovery-plan.yaml")
    args = ["--inventory", str(folder / "inventory.yaml"), "--output", plan, "--workspace", str(ws)]
    planned = run("plan-generate", *path, *args)
    assert planned.exit_code == 0, planned.output
    executed = run("execute-plan", "--plan", plan, "--workspace", str(ws))
    assert executed.exit_code == 0, executed.output
    roots = {n.name: n.root for n in inventory.nodes} | {p.name: p.root for p in inventory.storage}
    trees = {name: comparable(folder / f"targets/{name}", roots) for name, *_ in NODES}
    return trees | {POOL[0]: comparable(folder / f"storage/{POOL[0]}", roots)}


def test_a_set_registered_over_ssh_is_validated_planned_and_restored_over_ssh_as_its_local_copy(
    demo_set: DemoSet,
    sftp_server: SftpServer,
    tmp_path: Path,
    workspace: Path,  # noqa: F811
) -> None:
    shutil.copytree(demo_set.output, sftp_server.folder / "isos/t1")
    url = sftp_server.url("/isos/t1")
    trusted = ["--trusted-key", str(demo_set.key_path) + ".pub"]
    ssh = ["--ssh-host-key", sftp_server.host_key_line, "--ssh-identity", str(sftp_server.client_key_file)]
    registered = run("register-isos", "--path", url, "--workspace", str(workspace), "--quiet", *ssh, *trusted)
    assert registered.exit_code == 0, registered.output

    validated = run("validate-isos", "--deep", "--workspace", str(workspace), *trusted)
    assert validated.exit_code == 0, validated.output
    assert f"validating registered backup set t1 in {url}" in validated.output
    read_for_validation = sftp_server.behaviour.read
    over_ssh = planned_and_restored(tmp_path / "over-ssh", workspace)
    assert sftp_server.behaviour.read > read_for_validation  # the plan and the restore read it there

    local = planned_and_restored(tmp_path / "local", workspace, "--path", str(demo_set.output))
    assert all(local.values()) and over_ssh == local


def test_a_registered_host_that_offers_another_key_later_is_refused_naming_both_fingerprints(
    demo_set: DemoSet,
    sftp_server: SftpServer,
    workspace: Path,  # noqa: F811
) -> None:
    shutil.copytree(demo_set.output, sftp_server.folder / "isos/t1")
    url = sftp_server.url("/isos/t1")
    ssh = ["--ssh-host-key", sftp_server.host_key_line, "--ssh-identity", str(sftp_server.client_key_file)]
    registered = run("register-isos", "--path", url, "--workspace", str(workspace), "--quiet", *ssh)
    assert registered.exit_code == 0, registered.output
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
