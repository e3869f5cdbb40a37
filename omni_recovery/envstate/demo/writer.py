"""Writing the demo tree: explicit modes, counted bytes, deterministic mtimes; seeded randomness."""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from omni_recovery.envstate.demo.options import BLOCK_SIZE


class _Writer:
    """Writes files under a root with explicit modes (independent of the umask) and counts them."""

    def __init__(self, root: Path, progress: Callable[[int], None] | None) -> None:
        self.root = root
        self.progress = progress
        self.known_dirs: set[str] = {""}
        self.files = self.dirs = self.symlinks = 0
        self.bytes = self.volume_bytes = self.largest = 0

    def mkdir(self, rel: str, mode: int = 0o755) -> None:
        if rel in self.known_dirs:
            os.chmod(self.root / rel, mode)
            return
        parent = rel.rpartition("/")[0]
        if parent not in self.known_dirs:
            self.mkdir(parent)
        path = self.root / rel
        path.mkdir()
        os.chmod(path, mode)
        self.known_dirs.add(rel)
        self.dirs += 1

    def _open(self, rel: str, mode: int) -> int:
        parent = rel.rpartition("/")[0]
        if parent not in self.known_dirs:
            self.mkdir(parent)
        fd = os.open(self.root / rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.fchmod(fd, mode)
        return fd

    def write_stream(self, rel: str, blocks: Iterator[bytes], mode: int = 0o644) -> int:
        fd = self._open(rel, mode)
        size = 0
        try:
            for block in blocks:
                view = memoryview(block)
                while view:
                    done = os.write(fd, view)
                    view = view[done:]
                size += len(block)
                self._count(rel, len(block))
        finally:
            os.close(fd)
        self.files += 1
        self.largest = max(self.largest, size)
        return size

    def write(self, rel: str, data: bytes, mode: int = 0o644) -> int:
        return self.write_stream(rel, iter((data,)), mode)

    def write_random(
        self, rel: str, size: int, rng: random.Random, mode: int = 0o644, head: bytes = b""
    ) -> int:
        """A file of `size` bytes: `head`, then seeded random bytes, streamed 1 MiB at a time."""

        def blocks() -> Iterator[bytes]:
            first = head[:size]
            left = size - len(first)
            block = first + rng.randbytes(min(left, BLOCK_SIZE - len(first)))
            left -= len(block) - len(first)
            yield block
            while left > 0:
                step = min(left, BLOCK_SIZE)
                yield rng.randbytes(step)
                left -= step

        return self.write_stream(rel, blocks(), mode)

    def text(self, rel: str, text: str, mode: int = 0o644) -> int:
        return self.write(rel, text.encode("utf-8"), mode)

    def yaml(self, rel: str, data: Any, mode: int = 0o644) -> int:
        return self.text(rel, _yaml(data), mode)

    def json(self, rel: str, data: Any, mode: int = 0o644) -> int:
        return self.text(rel, json.dumps(data, indent=2, ensure_ascii=False) + "\n", mode)

    def jsonl(self, rel: str, rows: list[dict[str, Any]], mode: int = 0o644) -> int:
        lines = "".join(json.dumps(row, ensure_ascii=False, separators=(", ", ": ")) + "\n" for row in rows)
        return self.text(rel, lines, mode)

    def symlink(self, rel: str, target: str) -> None:
        parent = rel.rpartition("/")[0]
        if parent not in self.known_dirs:
            self.mkdir(parent)
        os.symlink(target, self.root / rel)
        self.symlinks += 1

    def _count(self, rel: str, size: int) -> None:
        self.bytes += size
        if rel.startswith("volumes/"):
            self.volume_bytes += size
        if self.progress is not None:
            self.progress(size)

    def finish(self, moment: datetime) -> None:
        """Give every entry a deterministic mtime, up to 30 days before `moment`, children first."""
        end = int(moment.timestamp())
        for folder, dirnames, filenames in os.walk(self.root, topdown=False):
            rel_folder = os.path.relpath(folder, self.root)
            for name in (*dirnames, *filenames):
                rel = name if rel_folder == "." else f"{rel_folder}/{name}"
                back = int.from_bytes(
                    hashlib.sha256(rel.encode("utf-8", "surrogateescape")).digest()[:4], "big"
                )
                stamp = end - back % (30 * 86400)
                os.utime(os.path.join(folder, name), (stamp, stamp), follow_symlinks=False)
        os.utime(self.root, (end, end))


class _Dumper(yaml.SafeDumper):
    """Safe YAML without anchors and aliases: every file reads on its own, plainly."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _yaml(data: Any) -> str:
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _derive(seed: int, label: str, size: int = 32) -> bytes:
    return hashlib.shake_256(f"omni-recovery-demo/{seed}/{label}".encode()).digest(size)


def _rng(seed: int, label: str) -> random.Random:
    return random.Random(_derive(seed, label))
