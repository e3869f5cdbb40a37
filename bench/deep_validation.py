"""Deep-validation throughput beside `openssl dgst -sha256` over the same ISO files, in the same run.

Run: python bench/deep_validation.py [--size-gib 1.5] [--workdir DIR] [--repeat 3]
     python bench/deep_validation.py --path SET --trusted-key KEY.pub --passphrase-file F

Without --path, makes a demo environment with one big streamed file of SIZE and backs it up into a
set of several ISOs (chunk 512 MiB, ISOs of at most 600 MiB). Every file is read once first, so
both sides read from the page cache. Then, medians of --repeat runs:

  one ISO (the largest)   openssl dgst -sha256 ISO
                          vs opening the ISO and deep_check_iso on it (every listed file hashed
                          from the image, chunk parts included)
  the whole set           openssl dgst -sha256 over every ISO, one after another (one process)
                          vs validate(deep=True): shallow checks, passphrase (scrypt), every
                          byte, chunk reassembly; at each --parallel-factor given

Throughput is ISO bytes / wall seconds for both sides (the same numerator), so the ratio is
openssl's time over ours. Goals from the issue: one ISO >= 0.8 of openssl; the whole set no
slower than openssl hashing its files one after another (ratio >= 1.0).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

GiB = 1024**3
MiB = 1024**2
PASSPHRASE = b"benchmark passphrase"


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def openssl(paths: list[Path]) -> None:
    subprocess.run(["openssl", "dgst", "-sha256", *map(str, paths)], check=True, stdout=subprocess.DEVNULL)


def build_set(work: Path, size_gib: float) -> tuple[Path, Path, bytes]:
    from omni_recovery.backup.writer import WriterOptions, create_backup_set
    from omni_recovery.backupset.signing import generate_signing_key, load_signing_key
    from omni_recovery.envstate.demo import DemoOptions, write_demo_environment

    env = work / "env"
    print(f"building a demo set with a {size_gib:.2f} GiB file in {work} ...", file=sys.stderr)
    write_demo_environment(
        env, DemoOptions(volume_scale="tiny", applications=4, big_file_bytes=int(size_gib * GiB))
    )
    key = work / "signing.key"
    generate_signing_key(key)
    output = work / "set"
    create_backup_set(
        env,
        str(output),
        signing_key=load_signing_key(key),
        passphrase=PASSPHRASE,
        options=WriterOptions(backup_set_id="bench", max_iso_size=600 * MiB, chunk_size=512 * MiB),
    )
    shutil.rmtree(env)  # only the ISOs are needed, and page cache is better spent on them
    return output, Path(str(key) + ".pub"), PASSPHRASE


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--path", type=Path, default=None, help="an existing set folder (else one is built)")
    parser.add_argument("--trusted-key", default=None, help="with --path: the signer's .pub or key id")
    parser.add_argument("--passphrase-file", type=Path, default=None, help="with --path: the passphrase")
    parser.add_argument("--size-gib", type=float, default=1.5, help="size of the big file of a built set")
    parser.add_argument("--workdir", type=Path, default=None, help="where to build the set (default /tmp)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parallel-factor", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    from omni_recovery.backupset.signing import TrustedSigners
    from omni_recovery.validate import deep_check_iso, open_iso, validate

    work = None
    if args.path is None:
        work = Path(tempfile.mkdtemp(prefix="bench-validate-", dir=args.workdir))
        folder, pub, passphrase = build_set(work, args.size_gib)
        trusted = TrustedSigners.from_specs([str(pub)])
    else:
        if args.trusted_key is None or args.passphrase_file is None:
            sys.exit("--path needs --trusted-key and --passphrase-file")
        folder = args.path
        trusted = TrustedSigners.from_specs([args.trusted_key])
        passphrase = args.passphrase_file.read_bytes().rstrip(b"\r\n")
    try:
        isos = sorted(folder.glob("*.iso"))
        sizes = {iso: iso.stat().st_size for iso in isos}
        total = sum(sizes.values())
        largest = max(isos, key=lambda iso: sizes[iso])
        subprocess.run(["cat", *map(str, isos)], check=True, stdout=subprocess.DEVNULL)  # warm the page cache
        print(f"set {folder}: {len(isos)} ISOs, {total / MiB:.0f} MiB; cpus: {os.cpu_count()}")

        def deep_one() -> None:
            reader, problems = open_iso(str(largest))
            assert reader is not None and not problems, problems
            with reader:
                found = deep_check_iso(reader, None)
            assert not found, found

        def gbps(size: int, seconds: float) -> str:
            return f"{size / seconds / 1e9:6.2f} GB/s ({seconds:6.3f} s)"

        print(f"\none ISO: {largest.name}, {sizes[largest] / MiB:.0f} MiB")
        base = median_seconds(lambda: openssl([largest]), args.repeat)
        ours = median_seconds(deep_one, args.repeat)
        print(f"  openssl dgst -sha256   {gbps(sizes[largest], base)}")
        print(f"  deep_check_iso         {gbps(sizes[largest], ours)}")
        print(f"  ratio ours/openssl     {base / ours:6.2f}   (goal >= 0.80)")

        print(f"\nwhole set: {len(isos)} ISOs, {total / MiB:.0f} MiB")
        base = median_seconds(lambda: openssl(isos), args.repeat)
        print(f"  openssl dgst -sha256 (one after another)   {gbps(total, base)}")
        for factor in args.parallel_factor:

            def deep_all(factor: int = factor) -> None:
                report = validate(str(folder), trusted, passphrase, deep=True, parallel_factor=factor)
                assert report.passed, report.to_text()

            ours = median_seconds(deep_all, args.repeat)
            print(
                f"  validate --deep, parallel-factor {factor:<2}      {gbps(total, ours)}   "
                f"ratio {base / ours:5.2f}   (goal >= 1.00)"
            )
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
