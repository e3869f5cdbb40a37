"""End-to-end recovery of a demo set with at least 2 GiB of volume data, beside `bsdtar -x`, in one run.

Run: python bench/recovery_end_to_end.py [--size-gib 2] [--workdir DIR] [--outdir DIR]

Makes a demo environment (the tiny scale's many small files plus one big streamed file, chunked
over several volume-data ISOs), backs it up, validates it deeply and plans its recovery (none of
which is timed), then with the ISOs in the page cache times:
  baseline  `bsdtar -xf` of every ISO of the set into an empty folder (verifies nothing)
  recovery  `execute-plan` through the restore assets (Dagster, in process): every step of the
            plan, every byte read from the ISO extents and verified while written, sealed files
            decrypted, adapted documents written, ring and cluster formed, verification (which
            re-hashes every restored file), report; the post-recovery backup is left out
and prints both, their GB/s over the volume bytes, and the ratio (goal from the issue: under 1.5).
Outputs go to tmpfs (/dev/shm) by default, see performance-facts.md about /tmp.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GiB = 1024**3
PASSPHRASE = b"bench passphrase"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument("--workdir", type=Path, default=None, help="where the environment and set go")
    parser.add_argument(
        "--outdir", type=Path, default=Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    )
    args = parser.parse_args()
    if shutil.which("bsdtar") is None:
        sys.exit("bsdtar is missing: apt-get install -y libarchive-tools")

    from omni_recovery.backupset.signing import TrustedSigners, generate_signing_key, load_signing_key
    from omni_recovery.backupset.writer import WriterOptions, create_backup_set
    from omni_recovery.checker import store, validate
    from omni_recovery.db.connection import connect
    from omni_recovery.db.schema import init_database
    from omni_recovery.db.server import database_url, stop_embedded
    from omni_recovery.envstate.demo import DemoOptions, write_demo_environment
    from omni_recovery.inventory import inventory_to_yaml, make_inventory
    from omni_recovery.planning import generate, record_plan_source, write_plan_files
    from omni_recovery.recovery import ExecuteOptions
    from omni_recovery.settings import load_settings
    from pipelines.recovery_runner import execute_recovery
    from transforms.environment_model import environment_from_folder

    work = Path(tempfile.mkdtemp(prefix="bench-e2e-", dir=args.workdir))
    out = Path(tempfile.mkdtemp(prefix="bench-e2e-out-", dir=args.outdir))
    settings = load_settings(work / "ws")
    try:
        env = work / "env"
        write_demo_environment(env, DemoOptions(volume_scale="tiny", big_file_bytes=int(args.size_gib * GiB)))
        generate_signing_key(work / "k.key")
        output = work / "set"
        create_backup_set(
            env,
            str(output),
            signing_key=load_signing_key(work / "k.key"),
            passphrase=PASSPHRASE,
            options=WriterOptions(max_iso_size=1 * GiB, chunk_size=768 * 1024**2),
        )
        url = database_url(settings)
        init_database(url)
        report = validate(
            str(output), TrustedSigners.from_specs([str(work / "k.key.pub")]), PASSPHRASE, deep=True
        )
        with connect(url) as conn:
            store(conn, report)
        nodes = environment_from_folder(env).nodes
        inventory = work / "inventory.yaml"
        inventory.write_text(
            inventory_to_yaml(
                make_inventory(
                    [(f"new-{n.name}", n.cpu_cores, n.memory_mib, n.disk_gib) for n in nodes],
                    root=(out / "infra").as_uri(),
                )
            )
        )
        plan, _ = generate(str(output), inventory, "basic")
        plan_path = work / "recovery-plan.yaml"
        write_plan_files(plan, plan_path)
        record_plan_source(plan_path, str(output), inventory)
        isos = sorted(output.glob("*.iso"))
        for iso in isos:
            subprocess.run(["cat", str(iso)], stdout=subprocess.DEVNULL, check=True)
        volume_bytes = sum(
            p.stat().st_size for p in (env / "volumes").rglob("*") if p.is_file() and not p.is_symlink()
        )

        started = time.perf_counter()
        for iso in isos:
            target = out / "bsdtar" / iso.stem
            target.mkdir(parents=True)
            subprocess.run(["bsdtar", "-xf", str(iso), "-C", str(target)], check=True)
        baseline = time.perf_counter() - started

        started = time.perf_counter()
        execute_recovery(settings, ExecuteOptions(plan_path), PASSPHRASE)
        recovery = time.perf_counter() - started

        print(
            f"set: {len(isos)} ISOs, {sum(i.stat().st_size for i in isos) / GiB:.2f} GiB; "
            f"volume data {volume_bytes / GiB:.2f} GiB; {len(plan.steps)} plan steps; "
            f"load {os.getloadavg()[0]:.1f}"
        )
        print(f"{'':34}{'wall s':>9}{'GB/s':>8}")
        print(f"{'bsdtar -xf (verifies nothing)':34}{baseline:9.2f}{volume_bytes / 1e9 / baseline:8.2f}")
        print(f"{'execute-plan (every byte verified)':34}{recovery:9.2f}{volume_bytes / 1e9 / recovery:8.2f}")
        ratio = recovery / baseline
        print(
            f"ratio execute-plan / bsdtar: {ratio:.2f}  (goal < 1.5: {'met' if ratio < 1.5 else 'NOT met'})"
        )
    finally:
        stop_embedded(settings)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
