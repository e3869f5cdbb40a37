"""Peak memory and throughput of `omni-recovery backup create` on a 2 GiB volume, beside a baseline.

Run: python bench/backup_memory.py [--size-gib 2] [--workdir DIR]

Makes a demo environment whose largest volume holds one streamed file of SIZE (plus the usual
small files), then in the same run:
  baseline  `openssl dgst -sha256` over the big file (one read of the bytes, nothing written)
  backup    `omni-recovery backup create` (seal, hash, chunk, write ISOs: two reads, one write)
and prints each command's wall time, MB/s and peak RSS (the child's VmHWM), with ratios.
Goal from the issue: backup peak RSS under 300 MiB whatever the volume size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import run_measured

GiB = 1024**3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    from omni_recovery.backupset.signing import generate_signing_key
    from omni_recovery.envstate.demo import DemoOptions, write_demo_environment

    work = Path(tempfile.mkdtemp(prefix="bench-backup-", dir=args.workdir))
    try:
        env = work / "env"
        big = int(args.size_gib * GiB)
        write_demo_environment(env, DemoOptions(volume_scale="tiny", big_file_bytes=big))
        big_file = max((p for p in env.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
        total = sum(p.stat().st_size for p in env.rglob("*") if p.is_file() and not p.is_symlink())
        generate_signing_key(work / "signing.key")
        subprocess.run(["cat", str(big_file)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache

        base_s, base_rss = run_measured(["openssl", "dgst", "-sha256", str(big_file)])
        cli = str(Path(sys.executable).with_name("omni-recovery"))
        child_env = dict(os.environ, OMNI_RECOVERY_PASSPHRASE="benchmark passphrase")
        backup_s, backup_rss = run_measured(
            [
                cli,
                "backup",
                "create",
                "--source",
                str(env),
                "--output",
                str(work / "set"),
                "--signing-key",
                str(work / "signing.key"),
                "--max-iso-size",
                "4G",
                "--chunk-size",
                "1G",
            ],
            env=child_env,
        )
        mb = total / 1e6
        print(f"environment: {total / GiB:.2f} GiB, largest file {big_file.stat().st_size / GiB:.2f} GiB")
        print(f"{'':28}{'wall s':>9}{'MB/s':>9}{'peak RSS MiB':>14}")
        print(
            f"{'openssl dgst -sha256 (big)':28}{base_s:9.2f}{big_file.stat().st_size / 1e6 / base_s:9.0f}"
            f"{base_rss / 2**20:14.1f}"
        )
        print(
            f"{'omni-recovery backup create':28}{backup_s:9.2f}{mb / backup_s:9.0f}{backup_rss / 2**20:14.1f}"
        )
        print(
            f"ratio backup/openssl wall: {backup_s / base_s:.2f}  "
            f"(backup reads every byte twice and writes it once; openssl reads once)"
        )
        verdict = "met" if backup_rss < 300 * 2**20 else "NOT met"
        print(f"goal: backup peak RSS < 300 MiB: {verdict} ({backup_rss / 2**20:.0f} MiB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
