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
import time
from collections.abc import Callable
from pathlib import Path

from timing import TMPFS, require_bsdtar, timed

GiB = 1024**3
MiB = 1024**2
PASSPHRASE = b"bench passphrase"


def tree_bytes(root: Path) -> tuple[int, int]:
    total = files = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
                files += 1
    return total, files


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-gib", type=float, default=2.0, help="volume data at least this large")
    parser.add_argument("--scale", default="medium", choices=["tiny", "small", "medium", "large"])
    parser.add_argument("--chunk-mib", type=int, default=1024, help="backup chunk size")
    parser.add_argument("--workdir", type=Path, default=None, help="where the env and the ISOs go")
    parser.add_argument("--outdir", type=Path, default=TMPFS)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    bsdtar = require_bsdtar()

    from omni_recovery.backupset.reader import IsoReader, list_backup_set, unlock_data_key
    from omni_recovery.backupset.signing import generate_signing_key, load_signing_key
    from omni_recovery.backupset.writer import WriterOptions, create_backup_set
    from omni_recovery.envstate.demo import DemoOptions, write_demo_environment
    from omni_recovery.restorer.files import ChunkCheck, auto_parallel, restore_files, restore_items
    from omni_recovery.targets.driver import TargetRoot

    work = Path(tempfile.mkdtemp(prefix="bench-restore-", dir=args.workdir))
    out = Path(tempfile.mkdtemp(prefix="bench-restore-out-", dir=args.outdir))
    try:
        env = work / "env"
        started = time.perf_counter()
        probe = work / "probe"
        write_demo_environment(probe, DemoOptions(volume_scale=args.scale))
        base, _ = tree_bytes(probe / "volumes")
        shutil.rmtree(probe)
        big = max(16 * MiB, int(args.size_gib * GiB) - base + 16 * MiB)
        write_demo_environment(env, DemoOptions(volume_scale=args.scale, big_file_bytes=big))
        volume_bytes, volume_files = tree_bytes(env / "volumes")
        print(
            f"environment: {volume_bytes / GiB:.2f} GiB of volume data in {volume_files} files "
            f"(scale {args.scale}, big file {big / GiB:.2f} GiB), "
            f"written in {time.perf_counter() - started:.1f} s"
        )
        key_path = work / "signing.key"
        generate_signing_key(key_path)
        started = time.perf_counter()
        create_backup_set(
            env,
            str(work / "set"),
            signing_key=load_signing_key(key_path),
            passphrase=PASSPHRASE,
            options=WriterOptions(backup_set_id="bench", chunk_size=args.chunk_mib * MiB),
        )
        shutil.rmtree(env)  # keep memory for the page cache of the ISOs and the outputs
        isos = [m.url.removeprefix("file://") for m in list_backup_set(str(work / "set"))]
        iso_bytes = sum(os.path.getsize(p) for p in isos)
        print(
            f"backup set: {len(isos)} ISOs, {iso_bytes / GiB:.2f} GiB, made in "
            f"{time.perf_counter() - started:.1f} s"
        )

        items = []
        data_key = None
        for member in list_backup_set(str(work / "set")):
            with IsoReader(member.url) as reader:
                items.extend(restore_items(reader))
                if reader.manifest.kind == "system-core":
                    data_key = unlock_data_key(reader, PASSPHRASE)
        chunked = {i.path for i in items if i.chunk_of}
        restored_bytes = sum(
            (i.encryption.plaintext_size if i.encryption else i.size) for i in items if i.type == "file"
        )
        print(
            f"restore items: {len(items)} ({len(chunked)} chunked files, "
            f"{sum(1 for i in items if i.encryption)} sealed), {restored_bytes / GiB:.2f} GiB to write"
        )
        for path in isos:  # warm the page cache for both contenders alike
            with open(path, "rb") as fh:
                while fh.read(16 * MiB):
                    pass

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
