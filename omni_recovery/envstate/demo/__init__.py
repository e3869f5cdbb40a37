"""A realistic, deterministic demo OmniCloud environment state folder.

`write_demo_environment()` writes a whole environment (nodes, a Director ring, an Orchestrator
cluster with its database tables, the seven core services, applications with a dependency DAG,
volumes full of PostgreSQL-like data folders, logs, uploads and search indexes, the network
configuration and a real CA key pair) into a new folder. Everything is derived from the seed:
the same options give a byte-identical tree (contents, names, modes, symlink targets and mtimes).
Key material is real (Ed25519 from seeded bytes) but must never be used outside a demo.

Large files are streamed 1 MiB at a time; nothing is built whole in memory. The tree is written
into a hidden sibling folder and renamed into place at the end, so an interrupted run never
leaves a half-written environment that looks whole.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from omni_recovery.envstate.demo.options import (
    _SCALES,
    BLOCK_SIZE,
    CORE_SERVICES,
    DEFAULT_LARGE_BIG_FILE,
    MANAGEMENT,
    MAX_APPLICATIONS,
    MAX_BIG_FILE,
    MAX_DIRECTORS,
    MAX_NODES,
    MAX_ORCHESTRATORS,
    OMNICLOUD_VERSION,
    SERVICES,
    STORAGE,
    VOLUME_SCALES,
    DemoOptions,
    DemoOptionsError,
    DemoSummary,
    GiB,
    KiB,
    MiB,
    scale_estimate,
)
from omni_recovery.envstate.demo.volumes import _VolumeWriter
from omni_recovery.envstate.demo.writer import _Writer
from omni_recovery.errors import EnvironmentStateError

__all__ = [
    "BLOCK_SIZE",
    "CORE_SERVICES",
    "DEFAULT_LARGE_BIG_FILE",
    "MANAGEMENT",
    "MAX_APPLICATIONS",
    "MAX_BIG_FILE",
    "MAX_DIRECTORS",
    "MAX_NODES",
    "MAX_ORCHESTRATORS",
    "OMNICLOUD_VERSION",
    "SERVICES",
    "STORAGE",
    "VOLUME_SCALES",
    "DemoOptions",
    "DemoOptionsError",
    "DemoSummary",
    "GiB",
    "KiB",
    "MiB",
    "scale_estimate",
    "write_demo_environment",
]


def write_demo_environment(
    root: Path, options: DemoOptions, progress: Callable[[int], None] | None = None
) -> DemoSummary:
    """Write a demo environment state folder at `root` (new, or an empty folder).

    `progress`, when given, is called with the number of bytes just written, after every write.
    Raises DemoOptionsError for bad options and EnvironmentStateError when `root` is not empty
    or the disk is too small; on any failure nothing is left at `root`.
    """
    options.validate()
    root = Path(root)
    if root.is_symlink():
        raise EnvironmentStateError(
            f"{root}: is a symlink; give a new or empty folder for the demo environment"
        )
    if root.exists():
        if not root.is_dir():
            raise EnvironmentStateError(f"{root}: exists and is not a folder")
        with os.scandir(root) as listing:
            if any(True for _ in listing):
                raise EnvironmentStateError(
                    f"{root}: not empty; the demo environment is written only into a new or empty folder"
                )
    parent = root.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    needed = scale_estimate(options)
    free = shutil.disk_usage(parent).free
    if needed > free:
        raise EnvironmentStateError(
            f"{parent}: {free / MiB:.0f} MiB free, the {options.volume_scale} demo environment needs "
            f"about {needed / MiB:.0f} MiB"
        )
    scale = _SCALES[options.volume_scale]
    big = options.big_file_bytes if options.big_file_bytes is not None else scale.big_file
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=parent))
    try:
        writer = _Writer(tmp, progress)
        demo = _Demo(options, scale, big, writer)
        demo.build()
        writer.finish(demo.recovery_point)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, root)  # replaces an empty folder atomically
        except OSError as exc:
            raise EnvironmentStateError(
                f"{root}: cannot move the finished environment into place: {exc}"
            ) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return DemoSummary(
        root=root,
        name=options.name,
        seed=options.seed,
        volume_scale=options.volume_scale,
        nodes=options.nodes,
        directors=options.directors,
        orchestrators=options.orchestrators,
        services=len(CORE_SERVICES),
        applications=options.applications,
        volumes=demo.volume_count,
        vms=demo.vm_count,
        files=writer.files,
        dirs=writer.dirs,
        symlinks=writer.symlinks,
        total_bytes=writer.bytes,
        volume_bytes=writer.volume_bytes,
        largest_file_bytes=writer.largest,
    )


class _Demo(_VolumeWriter):
    """The whole demo: planned first, then written part by part."""

    def build(self) -> None:
        self.plan_nodes()
        self.plan_vms_and_apps()
        self.write_system()
        self.write_nodes_and_directors()
        self.write_orchestrators()
        self.write_services()
        self.write_applications()
        self.write_network()
        self.write_volumes()
