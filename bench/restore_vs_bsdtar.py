"""Restore throughput of `restore_files` beside `bsdtar -xf` of the same ISO files, in one run.

Run: python bench/restore_vs_bsdtar.py [--size-gib 2] [--scale medium] [--chunk-mib 1024]
                                       [--workdir DIR] [--outdir DIR] [--rounds 3]

Makes a demo environment with at least SIZE of volume data (the scale's small files plus one
big streamed file that the backup chunks over several volume-data ISOs), backs it up (signed,
encrypted), then, with the ISOs in the page cache, alternates for each round:
  baseline  `bsdtar -xf` of every ISO into an empty folder (verifies nothing)
  restore   `restore_files` of the whole set onto an empty TargetRoot: every byte read from the
            ISO extents and hashed (a chunked file whole, against its logical_sha256), sealed
            files decrypted and authenticated, written to a temporary name and renamed
with parallel=1 and the default parallelism (a large file copied by one thread while another
hashes it), fsync on and off, and with a chunked file checked against its logical_sha256 (the
default, what a recovery does), its parts' own sha256 ("chunk_check=parts") or both ("both"),
printing
the median (and min) wall time, GB/s, the ratio restore / bsdtar (goal from the issue: under
1.5 with every byte verified), and the CPU time (user + system, all threads) beside bsdtar's.
The machine is shared: the load average is printed, and rounds alternate contenders so that
load hits all of them alike.
Outputs go to tmpfs (/dev/shm) by default: /tmp is ext4 mounted with `discard`, which makes
creating many files right after deleting many others unsteady (performance-facts.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench_set import add_set_arguments, make_bench_set
from timing import TMPFS, require_bsdtar, timed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_set_arguments(parser, size_gib=2.0, scale="medium")
    parser.add_argument("--outdir", type=Path, default=TMPFS)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    bsdtar = require_bsdtar()

    from omni_recovery.restorer.files import ChunkCheck, auto_parallel, restore_files
    from omni_recovery.targets.driver import TargetRoot

    work = Path(tempfile.mkdtemp(prefix="bench-restore-", dir=args.workdir))
    out = Path(tempfile.mkdtemp(prefix="bench-restore-out-", dir=args.outdir))
    try:
        made = make_bench_set(work, args.size_gib, args.scale, args.chunk_mib)
        isos, items, data_key, restored_bytes = made.isos, made.items, made.data_key, made.restored_bytes

        def run_bsdtar() -> None:
            dest = out / "bsdtar"
            dest.mkdir()
            for path in isos:
                subprocess.run([bsdtar, "-xf", path, "-C", str(dest)], check=True)

        def run_restore(
            parallel: int | None, fsync: bool, chunk_check: ChunkCheck = "whole"
        ) -> Callable[[], None]:
            def go() -> None:
                restore_files(
                    items,
                    TargetRoot(str(out / "restore"), fsync=fsync),
                    data_key,
                    parallel=parallel,
                    chunk_check=chunk_check,
                )

            return go

        n = max(2, os.cpu_count() or 1)
        default = "restore_files (defaults: parallel=auto fsync=on)"
        contenders: dict[str, Callable[[], None]] = {
            "bsdtar -xf": run_bsdtar,
            default: run_restore(None, True),
            "restore_files parallel=1 fsync=on": run_restore(1, True),
            f"restore_files parallel={n} fsync=on": run_restore(n, True),
            "restore_files parallel=auto fsync=off": run_restore(None, False),
            "restore_files parallel=auto chunk_check=parts": run_restore(None, True, "parts"),
            "restore_files parallel=auto chunk_check=both": run_restore(None, True, "both"),
        }
        chosen: list[int] = []
        times: dict[str, list[float]] = {name: [] for name in contenders}
        cpus: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            chosen.append(auto_parallel())
            for name, action in contenders.items():
                wall, cpu = timed(action)
                times[name].append(wall)
                cpus[name].append(cpu)
                shutil.rmtree(out / ("bsdtar" if name.startswith("bsdtar") else "restore"))

        print(
            f"\noutputs on {out} ({'tmpfs' if str(out).startswith('/dev/shm') else 'disk'}), "
            f"{args.rounds} rounds alternating, {os.cpu_count()} CPUs, load average "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; parallel=auto chose "
            f"{' '.join(map(str, chosen))} in the rounds"
        )
        print(
            f"  {'':50s} {'wall: median (min)':>20s}  {'GB/s':>5s}  {'ratio':>12s}  "
            f"{'CPU s':>6s} {'ratio':>5s}"
        )
        baseline = statistics.median(times["bsdtar -xf"])
        baseline_min = min(times["bsdtar -xf"])
        baseline_cpu = statistics.median(cpus["bsdtar -xf"])
        for name, samples in times.items():
            median = statistics.median(samples)
            cpu = statistics.median(cpus[name])
            print(
                f"  {name:50s} {median:8.2f} s ({min(samples):5.2f})  {restored_bytes / median / 1e9:5.2f}  "
                f"{median / baseline:5.2f} ({min(samples) / baseline_min:4.2f})  "
                f"{cpu:6.2f} {cpu / baseline_cpu:5.2f}"
                f"   wall samples {' '.join(f'{t:.2f}' for t in samples)}"
            )
        ratio = statistics.median(times[default]) / baseline
        print(
            f"\ngoal: wall ratio under 1.5 with every byte verified; default ({default}): {ratio:.2f} "
            f"{'MET' if ratio < 1.5 else 'NOT MET'}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
