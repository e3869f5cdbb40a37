"""A whole recovery onto machines reached over SSH equals the same recovery onto local folders.

Three nodes and one storage pool, each an in-process asyncssh SFTP server on 127.0.0.1 with its own
port, host key and folder (tests/targets/sftp_servers.py); the same plan shape onto local folders;
the trees compared file for file, mode for mode.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
import signal
import subprocess
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import psycopg
import pytest
from click.testing import CliRunner

from omni_recovery.adapt.inventory import (
    InventoryNode,
    SshKeys,
    StoragePool,
    inventory_to_yaml,
    make_inventory,
)
from omni_recovery.cli import main
from omni_recovery.execute.options import ExecuteOptions
from omni_recovery.operator_identity import Operator
from omni_recovery.plan.generate import generate, record_plan_source, write_plan_files
from omni_recovery.settings import load_settings
from omni_recovery.targets.driver import PARTIAL_SUFFIX
from pipelines.recovery_runner import execute_recovery
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.restorer.conftest import snapshot
from tests.targets.sftp_servers import OpenSshServer, SftpServer
from tests.test_recovery import (  # noqa: F401
    REGENERATED,
    Setup,
    execute_plan_command,
    stop_when,
    validated,
    workspace,
)

Item = TypeVar("Item", InventoryNode, StoragePool)
Server = SftpServer | OpenSshServer
NODES = [(f"big-{i}", 64, 524288, 8000) for i in range(3)]
POOL = ("fast", "nvme", 8000)  # every volume's class or a faster one


def plan_onto(
    demo: DemoSet, folder: Path, servers: Mapping[str, Server], *, identity_file: bool = True
) -> tuple[Setup, dict[str, str]]:
    """Plan `demo` onto NODES and POOL, each reached over SSH when `servers` has it (with the client
    key as its identity_file, unless not `identity_file`); the setup, and the root URL of each."""
    folder.mkdir(parents=True, exist_ok=True)
    inventory = make_inventory(NODES, root=f"file://{folder}", storage=[POOL])
    nodes = [_over_ssh(n, servers.get(n.name), identity_file) for n in inventory.nodes]
    storage = [_over_ssh(p, servers.get(p.name), identity_file) for p in inventory.storage]
    inventory = dataclasses.replace(inventory, nodes=tuple(nodes), storage=tuple(storage))
    inventory_path = folder / "inventory.yaml"
    inventory_path.write_text(inventory_to_yaml(inventory))
    plan, _ = generate(str(demo.output), inventory_path, "basic")
    plan_path = folder / "recovery-plan.yaml"
    write_plan_files(plan, plan_path)
    record_plan_source(plan_path, str(demo.output), inventory_path)
    roots = {n.name: n.root for n in nodes} | {p.name: p.root for p in storage}
    return Setup(demo, folder, plan_path, plan), roots


def recover(setup: Setup, ws: Path, **options: Any) -> Path:
    """Run the recovery of `setup`; the path of its report, which says it succeeded."""
    summary = execute_recovery(load_settings(ws), ExecuteOptions(setup.plan_path, **options), PASSPHRASE)
    assert summary.report and "SUCCEEDED" in Path(summary.report).read_text()
    return Path(summary.report)


def _over_ssh(item: Item, server: Server | None, identity_file: bool) -> Item:
    if server is None:
        return item
    (server.folder / "srv/omni").mkdir(parents=True, exist_ok=True)
    identity = str(server.client_key_file) if identity_file else None
    url = server.url(server.sftp_path(f"srv/omni/{item.name}"))
    return dataclasses.replace(item, root=url, ssh=SshKeys(server.host_key_line, identity))


def comparable(folder: Path, roots: dict[str, str]) -> dict[str, tuple[str, int, object, int]]:
    """The tree under `folder` as snapshot() has it, with each root's URL in the adapted documents
    written as its name; the regenerated keys' bytes left out, and the dates of what the recovery
    wrote (all but volume files)."""
    out: dict[str, tuple[str, int, object, int]] = {}
    for rel, (kind, mode, content, mtime) in snapshot(folder).items():
        if isinstance(content, bytes):
            for name, url in roots.items():
                content = content.replace(url.encode(), f"<{name}>".encode())
        out[rel] = (
            kind,
            mode,
            None if rel.startswith(REGENERATED) else content,
            mtime if "/files/" in rel else 0,
        )
    return out


def test_a_recovery_onto_three_ssh_nodes_and_an_ssh_pool_equals_one_onto_local_folders(
    validated: DemoSet,  # noqa: F811
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    sftp_servers: Callable[[str], SftpServer],
):
    servers = {name: sftp_servers(name) for name in [n[0] for n in NODES] + [POOL[0]]}
    over_ssh, ssh_roots = plan_onto(validated, tmp_path / "over-ssh", servers)
    report = recover(over_ssh, workspace)
    assert_who_ran_it_is_shown(report, workspace, servers.values())
    local, local_roots = plan_onto(validated, tmp_path / "local", {})
    recover(local, workspace)
    for name in [n[0] for n in NODES]:
        on_local = comparable(tmp_path / f"local/targets/{name}", local_roots)
        assert on_local, name
        assert comparable(servers[name].folder / f"srv/omni/{name}", ssh_roots) == on_local, name
    pool = comparable(tmp_path / f"local/storage/{POOL[0]}", local_roots)
    assert any(rel.startswith("volumes/") for rel in pool)
    assert comparable(servers[POOL[0]].folder / f"srv/omni/{POOL[0]}", ssh_roots) == pool


def assert_who_ran_it_is_shown(report: Path, ws: Path, servers: Iterable[Server]) -> None:
    """The report and `status` name the OS user, uid, host and database role that ran the run, and the
    key each SSH host accepted (its fingerprint as OpenSSH computes it)."""
    who = Operator.current()
    ran_by = f"run by {who.os_user} (uid {who.uid}) on {who.host}, database role "
    keys = [(f"{s.user}@127.0.0.1:{s.port}", public_fingerprint(s.client_key_file)) for s in servers]
    operators = json.loads(report.with_suffix(".json").read_text())["operators"]
    status = CliRunner().invoke(main, ["status", "--workspace", str(ws)]).output
    for shown in ("\n".join(operators), html.unescape(report.read_text()), status):
        assert ran_by in shown
        assert all(f"{address} {fingerprint}" in shown for address, fingerprint in keys), shown


def public_fingerprint(private_key: Path) -> str:
    found = subprocess.run(["ssh-keygen", "-l", "-f", f"{private_key}.pub"], capture_output=True, text=True)
    if found.returncode != 0:  # no OpenSSH client here: asyncssh's own reading of the public key
        return asyncssh.read_public_key(f"{private_key}.pub").get_fingerprint()
    return found.stdout.split()[1]


@pytest.mark.parametrize("data_channel", ["openssh", "sftp"])
def test_sshd_killed_mid_volume_fails_in_one_line_and_the_rerun_redoes_only_what_was_not_in_place(
    validated: DemoSet,  # noqa: F811
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    database_url: str,
    openssh: OpenSshServer,
    client_key: Path,
    data_channel: str,
):
    """The pool on OpenSSH's sshd, logged into with --ssh-identity (the inventory names no key); each
    file's bytes sent by OpenSSH's ssh, or over asyncssh's SFTP."""
    setup, roots = plan_onto(validated, tmp_path / "s", {POOL[0]: openssh}, identity_file=False)
    command, env = execute_plan_command(setup, workspace, database_url)
    command += [
        "--ssh-identity",
        str(client_key),
        "--parallel-factor",
        "1",
        "--ssh-data-channel",
        data_channel,
    ]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    volumes = openssh.folder / f"srv/omni/{POOL[0]}/volumes"
    stop_when(proc, lambda: in_place(volumes), "a volume file in place")
    openssh.stop()
    proc.send_signal(signal.SIGCONT)
    _, stderr = proc.communicate(timeout=120)
    message = stderr.decode()
    assert proc.returncode != 0 and "Traceback" not in message, message
    assert roots[POOL[0]] in message and re.search("connection dropped|connection refused", message), message
    before = {p: p.stat().st_mtime_ns for p in in_place(volumes)}

    openssh.start()  # the host is back, with the same key
    recover(setup, workspace, ssh_identity=client_key, ssh_data_channel=data_channel)
    for path, mtime in before.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was written again"
    assert not list(volumes.rglob(f"*{PARTIAL_SUFFIX}"))


def in_place(folder: Path) -> list[Path]:
    """The files under `folder` renamed into place (not temporary ones)."""
    if not folder.exists():
        return []
    return [p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(PARTIAL_SUFFIX)]


def test_two_runs_in_one_process_each_audit_only_the_ssh_host_they_reached(
    validated: DemoSet,  # noqa: F811
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    database_url: str,
    sftp_servers: Callable[[str], SftpServer],
):
    """As the UI or the daemon would: the second run's audit rows do not name the first run's host,
    whose key this process still holds."""
    first, second = sftp_servers("pool-a"), sftp_servers("pool-b")
    runs = {}
    for server, name in ((first, "a"), (second, "b")):
        setup, _ = plan_onto(validated, tmp_path / name, {POOL[0]: server})
        summary = execute_recovery(load_settings(workspace), ExecuteOptions(setup.plan_path), PASSPHRASE)
        runs[summary.run_id] = f"{server.user}@127.0.0.1:{server.port}"
    with psycopg.connect(database_url) as conn:
        for run_id, own_host in runs.items():
            rows = conn.execute(
                "SELECT operation, ssh_keys FROM omni.audit_log WHERE subject = %s OR detail->>'run_id' = %s",
                (run_id, run_id),
            ).fetchall()
            hosts = {address for _, keys in rows for address in keys}
            assert hosts == {own_host}, (run_id, rows)
            assert any(operation == "step.succeeded" and keys for operation, keys in rows)
