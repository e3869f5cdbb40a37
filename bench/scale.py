"""Wall time and peak RSS of each recovery stage on demo environments of 5, 50 and 200 nodes.

Run: python bench/scale.py [--nodes 5,50,200] [--apps-per-node 10] [--volumes-per-node 40]
                           [--workdir DIR] [--outdir DIR]

For each size: a demo environment at the seed's scale (`--nodes N`, a Director on each node up to
the demo's 32, `--applications` APPS_PER_NODE a node up to the demo's maximum, `--volumes-per-node`
40, tiny volumes: many small files),
backed up and given a same-shaped inventory (none of which is timed). Then each stage runs as the
real command in a child process of its own workspace, whose embedded PostgreSQL is started before
(by init-database) so that no stage pays for it:
  register   `register-isos --path SET`
  validate   `validate-isos --path SET --deep`
  plan       `plan-generate --path SET --inventory INV`
  execute    `execute-plan --plan PLAN` (every step, every byte verified; no post-recovery backup)
and prints each stage's wall seconds and peak RSS (the child's VmHWM, timing.child_peak) per size,
beside the baseline `python -c "import pipelines.definitions"` (what every stage pays before any
work), then, from one size to the next, how much the components, the files, each stage's time
beyond the baseline and its peak grew. A stage whose time grows clearly faster than the files
(or components) is marked "faster than linear"; a peak that grows with the files means a stage
holds them all at once.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from timing import TMPFS, child_peak

if TYPE_CHECKING:
    from omni_recovery.adapt.inventory import Inventory
    from omni_recovery.envstate.demo import DemoOptions
    from transforms.documents import Environment

PASSPHRASE = "bench passphrase"
STAGES = ("register", "validate", "plan", "execute")
MiB = 1024**2
# Growth of a stage's time beyond this multiple of the growth of the work is marked (noise on two
# shared CPUs is well under it).
SUPERLINEAR = 1.5
# The new inventory's management, services and storage subnets: a /19 for services holds the VMs
# of 2,000 applications.
SUBNETS = ("10.20.0.0/24", "10.20.32.0/19", "10.20.16.0/24")


@dataclass(frozen=True)
class Size:
    nodes: int
    directors: int
    applications: int
    volumes: int
    components: int
    files: int
    seconds: dict[str, float]
    peaks: dict[str, int]
    startup: float
    plan_bytes: int  # the plan's YAML

    def work(self, stage: str) -> float:
        """A stage's seconds beyond the baseline's (at least 0.01)."""
        return max(0.01, self.seconds[stage] - self.startup)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", default="5,50,200", help="comma-separated node counts")
    parser.add_argument("--apps-per-node", type=int, default=10)
    parser.add_argument("--volumes-per-node", type=int, default=40)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where environments, sets and workspaces go"
    )
    parser.add_argument("--outdir", type=Path, default=TMPFS, help="where the recoveries write")
    args = parser.parse_args()
    sizes = []
    for nodes in (int(n) for n in args.nodes.split(",")):
        work = Path(tempfile.mkdtemp(prefix=f"bench-scale-{nodes}-", dir=args.workdir))
        out = Path(tempfile.mkdtemp(prefix=f"bench-scale-out-{nodes}-", dir=args.outdir))
        try:
            sizes.append(measure(nodes, args.apps_per_node, args.volumes_per_node, work, out))
        finally:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
        print_size(sizes[-1])
    print_growth(sizes)


def measure(nodes: int, apps_per_node: int, volumes_per_node: int, work: Path, out: Path) -> Size:
    """One size: prepared, then each stage timed in a child process; the embedded server stopped."""
    from omni_recovery.db.server import stop_embedded
    from omni_recovery.settings import load_settings

    directors, applications, volumes, components, files = prepare(
        nodes, apps_per_node, volumes_per_node, work, out
    )
    workspace = ["--workspace", str(work / "ws")]
    commands = {
        "register": ["register-isos", "--path", str(work / "set"), "--quiet"],
        "validate": ["validate-isos", "--path", str(work / "set"), "--deep"],
        "plan": ["plan-generate", "--path", str(work / "set"), "--inventory", str(work / "inventory.yaml")],
        "execute": ["execute-plan", "--plan", str(work / "recovery-plan.yaml")],
    }
    commands["validate"] += [
        "--trusted-key",
        str(work / "k.key.pub"),
        "--passphrase-file",
        str(work / "pass"),
    ]
    commands["plan"] += ["--output", str(work / "recovery-plan.yaml")]
    commands["execute"] += ["--passphrase-file", str(work / "pass")]
    seconds, peaks = {}, {}
    try:
        run(["init-database", *workspace])
        startup, _, _ = child_peak([sys.executable, "-c", "import pipelines.definitions"])
        for stage in STAGES:
            seconds[stage], peaks[stage] = run([*commands[stage], *workspace])
    finally:
        stop_embedded(load_settings(work / "ws"))
    plan_bytes = (work / "recovery-plan.yaml").stat().st_size
    counts = (nodes, directors, applications, volumes, components, files)
    return Size(*counts, seconds, peaks, startup, plan_bytes)


def prepare(
    nodes: int, apps_per_node: int, volumes_per_node: int | None, work: Path, out: Path
) -> tuple[int, int, int, int, int]:
    """The demo environment, its signed set and a same-shaped inventory writing under `out`; the
    Directors, applications, volumes, components and files of the environment."""
    from omni_recovery.adapt.inventory import inventory_to_yaml
    from omni_recovery.backup.writer import WriterOptions, create_backup_set
    from omni_recovery.backupset.signing import generate_signing_key, load_signing_key
    from omni_recovery.envstate.demo import MAX_APPLICATIONS, MAX_DIRECTORS, write_demo_environment
    from omni_recovery.envstate.folder import environment_from_folder

    directors = min(nodes, MAX_DIRECTORS)
    applications = min(nodes * apps_per_node, MAX_APPLICATIONS)
    summary = write_demo_environment(work / "env", demo_options(nodes, apps_per_node, volumes_per_node))
    generate_signing_key(work / "k.key")
    (work / "pass").write_text(PASSPHRASE)
    create_backup_set(
        work / "env",
        str(work / "set"),
        signing_key=load_signing_key(work / "k.key"),
        passphrase=PASSPHRASE.encode(),
        options=WriterOptions(backup_set_id=f"scale-{nodes}"),
    )
    environment = environment_from_folder(work / "env")
    inventory = same_shaped_inventory(environment, (out / "infra").as_uri())
    (work / "inventory.yaml").write_text(inventory_to_yaml(inventory))
    return directors, applications, summary.volumes, len(environment.components), summary.files


def demo_options(nodes: int, apps_per_node: int, volumes_per_node: int | None) -> DemoOptions:
    """A demo environment of `nodes` nodes at the issue's shape: tiny volumes, capped Directors."""
    from omni_recovery.envstate.demo import MAX_APPLICATIONS, MAX_DIRECTORS, DemoOptions

    return DemoOptions(
        nodes=nodes,
        directors=min(nodes, MAX_DIRECTORS),
        applications=min(nodes * apps_per_node, MAX_APPLICATIONS),
        volume_scale="tiny",
        volumes_per_node=volumes_per_node,
    )


def same_shaped_inventory(environment: Environment, root: str) -> Inventory:
    """An inventory of the environment's node shapes under `root`, two pools that each hold it all."""
    from omni_recovery.adapt.inventory import make_inventory

    shapes = [(f"new-{n.name}", n.cpu_cores, n.memory_mib, n.disk_gib) for n in environment.nodes]
    capacity = max(4000, 2 * int(sum(v.size_gib for v in environment.volumes)))
    pools = [("fast", "ssd", capacity), ("bulk", "hdd", capacity)]
    return make_inventory(shapes, root=root, storage=pools, subnets=SUBNETS)


def run(arguments: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS of `omni-recovery ARGUMENTS` in a child process, which must succeed."""
    command = [str(Path(sys.executable).with_name("omni-recovery")), *arguments]
    elapsed, peak, code = child_peak(command)
    if code != 0:
        raise SystemExit(f"{' '.join(arguments[:1])} failed (exit {code})")
    return elapsed, peak


def print_size(size: Size) -> None:
    print(
        f"{size.nodes} nodes, {size.directors} Directors, {size.applications} applications, "
        f"{size.volumes} volumes: "
        f"{size.components:,} components, {size.files:,} files"
    )
    print(f"  baseline  {size.startup:8.2f} s   (import pipelines.definitions)")
    for stage in STAGES:
        print(f"  {stage:<9} {size.seconds[stage]:8.2f} s   peak RSS {size.peaks[stage] / MiB:7.0f} MiB")
    print(f"  the plan: {size.plan_bytes / MiB:.1f} MiB of YAML")


def print_growth(sizes: list[Size]) -> None:
    """Each stage's growth from one size to the next beside the growth of the work."""
    for before, after in itertools.pairwise(sizes):
        files = after.files / before.files
        components = after.components / before.components
        plan = after.plan_bytes / before.plan_bytes
        print(
            f"{before.nodes} -> {after.nodes} nodes: components x{components:.2f}, files x{files:.2f}, "
            f"plan YAML x{plan:.2f}"
        )
        for stage in STAGES:
            time = after.work(stage) / before.work(stage)
            peak = after.peaks[stage] / before.peaks[stage]
            verdict = (
                "faster than linear" if time > SUPERLINEAR * max(files, components) else "linear or less"
            )
            print(f"  {stage:<9} time beyond the baseline x{time:5.2f}   peak x{peak:5.2f}   {verdict}")


if __name__ == "__main__":
    main()
