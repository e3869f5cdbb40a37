"""A whole recovery onto machines reached over SSH equals the same recovery onto local folders.

Three nodes and one storage pool, each an in-process asyncssh SFTP server on 127.0.0.1 with its own
port, host key and folder (tests/targets/sftp_servers.py); the same plan shape onto local folders;
the trees compared file for file, mode for mode.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from omni_recovery.inventory import InventoryNode, SshKeys, StoragePool, inventory_to_yaml, make_inventory
from omni_recovery.planning import generate, record_plan_source, write_plan_files
from omni_recovery.recovery import ExecuteOptions
from omni_recovery.settings import load_settings
from pipelines.recovery_runner import execute_recovery
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.restorer.conftest import snapshot
from tests.targets.sftp_servers import SftpServer
from tests.test_recovery import REGENERATED, validated, workspace  # noqa: F401

Item = TypeVar("Item", InventoryNode, StoragePool)
NODES = [(f"big-{i}", 64, 524288, 8000) for i in range(3)]
POOL = ("fast", "nvme", 8000)  # every volume's class or a faster one


def recover_onto(demo: DemoSet, folder: Path, ws: Path, servers: dict[str, SftpServer]) -> dict[str, str]:
    """Plan `demo` onto NODES and POOL (each reached over SSH when `servers` has it) and recover;
    returns the root URL of each."""
    folder.mkdir(parents=True, exist_ok=True)
    inventory = make_inventory(NODES, root=f"file://{folder}", storage=[POOL])
    nodes = [_over_ssh(n, servers.get(n.name)) for n in inventory.nodes]
    storage = [_over_ssh(p, servers.get(p.name)) for p in inventory.storage]
    inventory = dataclasses.replace(inventory, nodes=tuple(nodes), storage=tuple(storage))
    inventory_path = folder / "inventory.yaml"
    inventory_path.write_text(inventory_to_yaml(inventory))
    plan, _ = generate(str(demo.output), inventory_path, "basic")
    plan_path = folder / "recovery-plan.yaml"
    write_plan_files(plan, plan_path)
    record_plan_source(plan_path, str(demo.output), inventory_path)
    summary = execute_recovery(load_settings(ws), ExecuteOptions(plan_path), PASSPHRASE)
    assert summary.report and "SUCCEEDED" in Path(summary.report).read_text()
    return {n.name: n.root for n in nodes} | {p.name: p.root for p in storage}


def _over_ssh(item: Item, server: SftpServer | None) -> Item:
    if server is None:
        return item
    (server.folder / "srv/omni").mkdir(parents=True)
    keys = SshKeys(server.host_key_line, str(server.client_key_file))
    return dataclasses.replace(item, root=server.url(f"/srv/omni/{item.name}"), ssh=keys)


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
    ssh_roots = recover_onto(validated, tmp_path / "over-ssh", workspace, servers)
    local_roots = recover_onto(validated, tmp_path / "local", workspace, {})
    for name in [n[0] for n in NODES]:
        local = comparable(tmp_path / f"local/targets/{name}", local_roots)
        assert local, name
        assert comparable(servers[name].folder / f"srv/omni/{name}", ssh_roots) == local, name
    pool = comparable(tmp_path / f"local/storage/{POOL[0]}", local_roots)
    assert any(rel.startswith("volumes/") for rel in pool)
    assert comparable(servers[POOL[0]].folder / f"srv/omni/{POOL[0]}", ssh_roots) == pool
