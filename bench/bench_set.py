"""A signed, encrypted backup set of at least a given size, for the restore benchmarks."""

from __future__ import annotations

import argparse
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GiB = 1024**3
MiB = 1024**2
PASSPHRASE = b"bench passphrase"


@dataclass
class BenchSet:
    isos: list[str]  # their paths
    items: list[Any]  # RestoreItems of every environment file
    data_key: Any
    restored_bytes: int  # what a restore writes


def add_set_arguments(parser: argparse.ArgumentParser, size_gib: float, scale: str) -> None:
    """The options that say which set `make_bench_set` makes, and where."""
    parser.add_argument("--size-gib", type=float, default=size_gib, help="volume data at least this large")
    parser.add_argument("--scale", default=scale, choices=["tiny", "small", "medium", "large"])
    parser.add_argument("--chunk-mib", type=int, default=1024, help="backup chunk size")
    parser.add_argument("--workdir", type=Path, default=None, help="where the env and the ISOs go")


def tree_bytes(root: Path) -> tuple[int, int]:
    total = files = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
                files += 1
    return total, files


def make_bench_set(work: Path, size_gib: float, scale: str, chunk_mib: int) -> BenchSet:
    """A demo environment with at least `size_gib` of volume data (the scale's files plus one big
    file) backed up under `work`/set, the environment removed again; prints what it made."""
    from omni_recovery.backup.writer import WriterOptions, create_backup_set
    from omni_recovery.backupset.reader import IsoReader, list_backup_set, unlock_data_key
    from omni_recovery.backupset.signing import generate_signing_key, load_signing_key
    from omni_recovery.envstate.demo import DemoOptions, write_demo_environment
    from omni_recovery.restorer.files import restore_items

    env = work / "env"
    started = time.perf_counter()
    probe = work / "probe"
    write_demo_environment(probe, DemoOptions(volume_scale=scale))
    base, _ = tree_bytes(probe / "volumes")
    shutil.rmtree(probe)
    big = max(16 * MiB, int(size_gib * GiB) - base + 16 * MiB)
    write_demo_environment(env, DemoOptions(volume_scale=scale, big_file_bytes=big))
    volume_bytes, volume_files = tree_bytes(env / "volumes")
    print(
        f"environment: {volume_bytes / GiB:.2f} GiB of volume data in {volume_files} files "
        f"(scale {scale}, big file {big / GiB:.2f} GiB), "
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
        options=WriterOptions(backup_set_id="bench", chunk_size=chunk_mib * MiB),
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
    restored = sum(
        (i.encryption.plaintext_size if i.encryption else i.size) for i in items if i.type == "file"
    )
    print(
        f"restore items: {len(items)} ({len({i.path for i in items if i.chunk_of})} chunked files, "
        f"{sum(1 for i in items if i.encryption)} sealed), {restored / GiB:.2f} GiB to write"
    )
    for path in isos:  # warm the page cache for every contender alike
        with open(path, "rb") as fh:
            while fh.read(16 * MiB):
                pass
    return BenchSet(isos, items, data_key, restored)
