"""execute-plan on restore workers (one per node, dagster-celery) beside the in-process run of the
same plan, in the same command.

Run: python bench/restore_workers.py [--nodes 3] [--apps-per-node 4] [--workdir DIR] [--outdir DIR]

A demo environment of NODES nodes (tiny volumes), backed up, registered, deeply validated and
planned onto a same-shaped inventory whose storage pools are served by the nodes' workers (none
of which is timed), as bench/scale.py prepares it. Then, timed, each as the real command in a
child process: `execute-plan` in process (the baseline), and `execute-plan --executor celery`
with one `omni-recovery worker` per node already running (their start is not timed; every worker
serves its node's queue on this same machine, so this measures what the engine adds, not what
separate machines would gain). Both restore every byte, verified, into a fresh folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from scale import PASSPHRASE, prepare, run
from timing import TMPFS


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--apps-per-node", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=None, help="where the set and workspaces go")
    parser.add_argument("--outdir", type=Path, default=TMPFS, help="where the recoveries write")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-workers-", dir=args.workdir))
    out = Path(tempfile.mkdtemp(prefix="bench-workers-out-", dir=args.outdir))
    try:
        measure(args.nodes, args.apps_per_node, work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


def measure(nodes: int, apps_per_node: int, work: Path, out: Path) -> None:
    from omni_recovery.db.server import database_url, stop_embedded
    from omni_recovery.settings import load_settings

    _, applications, _, _, files = prepare(nodes, apps_per_node, None, work, out)
    queues = pools_on_nodes(work / "inventory.yaml")
    workspace = ["--workspace", str(work / "ws")]
    execute = [
        "execute-plan",
        "--plan",
        str(work / "recovery-plan.yaml"),
        "--passphrase-file",
        str(work / "pass"),
    ]
    try:
        run(["init-database", *workspace])
        run(["register-isos", "--path", str(work / "set"), "--quiet", *workspace])
        trust = ["--trusted-key", str(work / "k.key.pub"), "--passphrase-file", str(work / "pass")]
        run(["validate-isos", "--path", str(work / "set"), "--deep", *trust, *workspace])
        plan = ["--inventory", str(work / "inventory.yaml"), "--output", str(work / "recovery-plan.yaml")]
        run(["plan-generate", "--path", str(work / "set"), *plan, *workspace])
        in_process, _ = run([*execute, *workspace])
        shutil.rmtree(out / "infra")
        url = database_url(load_settings(work / "ws"))
        workers = [start_worker(queue, work / "workers" / queue, url) for queue in queues]
        try:
            on_workers, _ = run([*execute, "--executor", "celery", *workspace])
        finally:
            stop(workers)
    finally:
        stop_embedded(load_settings(work / "ws"))
    print(f"{nodes} nodes, {applications} applications, {files:,} files; {len(queues)} workers")
    print(f"  execute-plan in process (baseline)     {in_process:7.2f} s")
    print(
        f"  execute-plan --executor celery         {on_workers:7.2f} s   ratio {on_workers / in_process:.2f}"
    )


def pools_on_nodes(inventory_path: Path) -> list[str]:
    """Give the inventory's pools the nodes' queues (round robin); the nodes' queues."""
    from omni_recovery.adapt.inventory import inventory_to_yaml, load_inventory

    inventory = load_inventory(inventory_path, allow_system_root=True)
    queues = [n.queue for n in inventory.nodes]
    pools = tuple(
        dataclasses.replace(p, worker_queue=queues[i % len(queues)]) for i, p in enumerate(inventory.storage)
    )
    inventory_path.write_text(inventory_to_yaml(dataclasses.replace(inventory, storage=pools)))
    return queues


def start_worker(queue: str, folder: Path, url: str) -> subprocess.Popen[bytes]:
    folder.mkdir(parents=True)
    (folder / "pass").write_text(PASSPHRASE)
    command = [str(Path(sys.executable).with_name("omni-recovery")), "worker", "--queue", queue]
    command += ["--passphrase-file", str(folder / "pass"), "--workspace", str(folder / "ws")]
    env = dict(os.environ, OMNI_RECOVERY_DATABASE_URL=url)
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=120)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


if __name__ == "__main__":
    main()
