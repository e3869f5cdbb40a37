"""Peak memory of restoring a backup set, at two volume sizes, beside `bsdtar -x` of the same ISOs.

Run: python bench/restore_memory.py [--sizes-gib 0.25 2] [--workdir DIR] [--outdir DIR]

For each size, makes a demo environment whose largest volume holds one streamed file of that size
(plus the tiny scale's small files), backs it up (signed, encrypted, default chunking), then
measures two child processes on the same ISOs, each into an empty folder:
  baseline  `bsdtar -xf` of every ISO (verifies nothing)
  restore   `restore_files` of every environment file (default parallelism): read from the ISO
            extents, hashed, sealed files decrypted, written under a temporary name and renamed
and prints each one's wall time and peak RSS (the child's VmHWM, see timing.child_peak).
The stream rule: the restore's peak memory must not grow with the size of a volume (it holds a
few 1 MiB buffers per file in flight, never a file); the figures at the two sizes show whether
it does.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from timing import TMPFS, require_bsdtar, run_measured

GiB = 1024**3
PASSPHRASE = "bench passphrase"

RESTORE = """
import sys
from omni_recovery.backupset.reader import IsoReader, list_backup_set, unlock_data_key
from omni_recovery.restorer.files import restore_files, restore_items
from omni_recovery.targets.driver import TargetRoot

items, key = [], None
for member in list_backup_set(sys.argv[1]):
    with IsoReader(member.url) as reader:
        items.extend(restore_items(reader))
        if reader.manifest.kind == "system-core":
            key = unlock_data_key(reader, sys.argv[3].encode())
restore_files(items, TargetRoot(sys.argv[2]), key)
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes-gib", type=float, nargs="+", default=[0.25, 2.0])
    parser.add_argument("--workdir", type=Path, default=None, help="where the environments and sets go")
    parser.add_argument("--outdir", type=Path, default=TMPFS)
    args = parser.parse_args()
    require_bsdtar()

    print(f"{'volume GiB':>10}  {'bsdtar s':>9}{'RSS MiB':>9}  {'restore s':>10}{'RSS MiB':>9}")
    rows = [measure(size, args.workdir, args.outdir) for size in args.sizes_gib]
    for size, (tar_s, tar_rss), (restore_s, restore_rss) in rows:
        print(
            f"{size:10.2f}  {tar_s:9.2f}{tar_rss / 2**20:9.1f}  {restore_s:10.2f}{restore_rss / 2**20:9.1f}"
        )
    (small, _, (_, first)), (large, _, (_, last)) = rows[0], rows[-1]
    print(
        f"restore peak RSS from {small:g} to {large:g} GiB: {first / 2**20:.0f} -> {last / 2**20:.0f} MiB "
        f"({'does not grow' if last < first * 1.1 + 8 * 2**20 else 'GROWS'} with the volume)"
    )


def measure(
    size_gib: float, workdir: Path | None, outdir: Path | None
) -> tuple[float, tuple[float, int], tuple[float, int]]:
    """(size, bsdtar's wall s and peak RSS, the restore's) for a set with a volume of `size_gib`."""
    from omni_recovery.backup.writer import create_backup_set
    from omni_recovery.backupset.signing import generate_signing_key, load_signing_key
    from omni_recovery.envstate.demo import DemoOptions, write_demo_environment

    work = Path(tempfile.mkdtemp(prefix="bench-restore-memory-", dir=workdir))
    out = Path(tempfile.mkdtemp(prefix="bench-restore-memory-out-", dir=outdir))
    try:
        env = work / "env"
        write_demo_environment(env, DemoOptions(volume_scale="tiny", big_file_bytes=int(size_gib * GiB)))
        generate_signing_key(work / "signing.key")
        create_backup_set(
            env,
            str(work / "set"),
            signing_key=load_signing_key(work / "signing.key"),
            passphrase=PASSPHRASE.encode(),
        )
        shutil.rmtree(env)
        isos = sorted(str(p) for p in (work / "set").glob("*.iso"))
        runs = []
        for iso in isos:
            into = out / "bsdtar" / Path(iso).stem
            into.mkdir(parents=True)
            runs.append(run_measured(["bsdtar", "-xf", iso, "-C", str(into)]))
        tar = (sum(wall for wall, _ in runs), max(rss for _, rss in runs))
        shutil.rmtree(out / "bsdtar")
        restore = run_measured(
            [sys.executable, "-c", RESTORE, str(work / "set"), str(out / "restore"), PASSPHRASE]
        )
        return size_gib, tar, restore
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
