"""Peak RSS of plan-generate as the set's files grow, beside the code of another commit (issue 18, 4).

Run: python bench/plan_memory.py [--files 10000,50000,100000] [--before main]

For each count, the tiny demo environment with that many small files added to its volumes' file trees
(few components: what grows is the files) is backed up once; then `omni-recovery plan-generate` of the
set runs as a child process with this tree's code and with the code of `--before` (exported by
`git archive` and put first on PYTHONPATH), alternating, each child's own peak RSS (VmHWM) taken. It
prints each peak and, between the counts, the growth per added file of each code.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import child_peak

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
PASSPHRASE = "bench plan memory"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", default="10000,50000,100000", help="comma-separated counts of added files")
    parser.add_argument("--before", default="main", help="the commit whose code is the baseline")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-plan-memory-", dir=args.workdir))
    try:
        before = exported(args.before, work / "before")
        peaks: dict[int, dict[str, int]] = {}
        for count in (int(n) for n in args.files.split(",")):
            peaks[count] = measure(count, work / f"n{count}", {"after": ROOT, "before": before})
            print(
                f"{count:>7,} files: " + "  ".join(f"{k} {v / MiB:7.1f} MiB" for k, v in peaks[count].items())
            )
            print(f"         load average {os.getloadavg()[0]:.1f}", flush=True)
        counts = sorted(peaks)
        for low, high in itertools.pairwise(counts):
            growth = {k: (peaks[high][k] - peaks[low][k]) / (high - low) for k in ("before", "after")}
            print(
                f"{low:,} → {high:,} files: peak bytes a file, "
                f"before {growth['before']:.0f}, after {growth['after']:.0f}"
            )
    finally:
        subprocess.run(
            [sys.executable, "-m", "omni_recovery.cli", "stop-database", "--workspace", str(work / "ws")]
        )
        shutil.rmtree(work, ignore_errors=True)


def exported(commit: str, folder: Path) -> Path:
    folder.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def measure(count: int, work: Path, trees: dict[str, Path]) -> dict[str, int]:
    """The set of `count` added files made under `work`, then plan-generate's peak with each tree."""
    make_set(count, work)
    peaks: dict[str, int] = {}
    for name, tree in trees.items():
        command = [sys.executable, "-c", "import sys; from omni_recovery.cli import main; sys.exit(main())"]
        command += ["plan-generate", "--path", str(work / "set"), "--inventory", str(work / "inventory.yaml")]
        command += ["--output", str(work / f"plan-{name}.yaml"), "--workspace", str(work.parent / "ws")]
        environment = {**os.environ, "PYTHONPATH": str(tree)}
        _, peaks[name], code = child_peak(command, env=environment)
        if code != 0:
            raise SystemExit(f"plan-generate with the {name} code failed (exit {code})")
    return peaks


def make_set(count: int, work: Path) -> None:
    from omni_recovery.adapt.inventory import inventory_to_yaml, make_inventory
    from omni_recovery.backup.writer import create_backup_set
    from omni_recovery.backupset.signing import generate_signing_key, load_signing_key
    from omni_recovery.envstate.demo import DemoOptions, write_demo_environment
    from omni_recovery.envstate.folder import environment_from_folder

    env = work / "env"
    write_demo_environment(env, DemoOptions(volume_scale="tiny"))
    volumes = sorted(p for p in (env / "volumes").glob("*/*") if p.is_dir())
    for index in range(count):
        folder = volumes[index % len(volumes)] / "files" / "bench-many" / f"{index // 1000:03}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index:06}").write_bytes(index.to_bytes(8, "big"))
    generate_signing_key(work / "k.key")
    create_backup_set(
        env, str(work / "set"), signing_key=load_signing_key(work / "k.key"), passphrase=PASSPHRASE.encode()
    )
    nodes = environment_from_folder(env).nodes
    shapes = [(f"new-{n.name}", n.cpu_cores, n.memory_mib, n.disk_gib) for n in nodes]
    (work / "inventory.yaml").write_text(
        inventory_to_yaml(make_inventory(shapes, root=(work / "out").as_uri()))
    )
    shutil.rmtree(env)


if __name__ == "__main__":
    main()
