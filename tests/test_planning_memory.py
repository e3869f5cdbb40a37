"""Planning reads a set without holding its files: what `plan-generate` holds at its peak while it
reads a set grows with the documents, not with the files of the volume trees (issue 18, item 4).

Two real sets of the same tiny demo environment, one with N and one with 4N more small files in its
volumes, each read for planning under tracemalloc; the difference of the two peaks must stay within a
bound that does not depend on N. No time is measured: tracemalloc counts the bytes Python allocated.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from omni_recovery.backup.writer import WriterOptions
from omni_recovery.plan.generate import stream_set_environment
from tests.demo_fixtures import TINY, signed_set, write_demo

FEW = 2500
# What the 7,500 added files may add to the peak, whatever their number: a manifest is read a block of
# 1 MiB at a time (the block, its text and the next one). Reading every manifest whole with every
# ISO's listing, as planning did before, took 2,239 bytes a file here: 16.8 MB.
BOUND = 4 * 1024 * 1024


def set_with_files(tmp_path_factory: pytest.TempPathFactory, count: int) -> Path:
    env = write_demo(tmp_path_factory, f"env-{count}", TINY)
    volumes = sorted(p for p in (env / "volumes").glob("*/*") if p.is_dir())
    for index in range(count):
        folder = volumes[index % len(volumes)] / "files" / "many" / f"{index // 100:03}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index:06}").write_bytes(index.to_bytes(8, "big"))
    work = tmp_path_factory.mktemp(f"set-{count}")
    return signed_set(env, work, WriterOptions(backup_set_id=f"m{count}")).output


def planning_peak(location: Path) -> int:
    stream_set_environment(str(location))  # imports and caches warmed outside the measure
    tracemalloc.start()
    try:
        environment = stream_set_environment(str(location))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert environment.environment.applications
    return peak


def test_what_planning_holds_does_not_grow_with_the_files(tmp_path_factory: pytest.TempPathFactory) -> None:
    small = planning_peak(set_with_files(tmp_path_factory, FEW))
    large = planning_peak(set_with_files(tmp_path_factory, 4 * FEW))
    added = 3 * FEW
    print(f"peak {small} → {large} bytes: {(large - small) / added:.0f} a file")
    assert large - small <= BOUND
