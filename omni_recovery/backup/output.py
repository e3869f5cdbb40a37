"""The output folder of a backup set (a local folder or any fsspec URL): each ISO appears under its
name only once whole, and a failed run leaves none of its ISOs there.

A folder that already holds anything is refused (a set folder holds one backup set). pycdlib seeks
while writing an image, so for a remote URL the image is written locally first, then uploaded.
An output that refuses bytes (disk full) raises RecoveryError naming the ISO.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from omni_recovery.errors import RecoveryError, some_of

__all__ = ["output_folder", "refuse_non_empty"]


def refuse_non_empty(fs: Any, root: str, output: str) -> None:
    if not fs.exists(root):
        return
    present = sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(root, detail=False))
    if present:
        raise RecoveryError(
            f"{output} already holds {some_of(present)}; a set folder holds one backup set, so refusing to "
            "overwrite a backup or mix two sets"
        )


@contextmanager
def output_folder(output: str, staging: Path) -> Iterator[Callable[[str], Any]]:
    """Yields `place(name)`: a context manager giving a binary file that appears in `output` as `name`
    only once closed without error. If anything fails, every ISO this run wrote is removed again.

    pycdlib seeks while writing an image, so a remote URL gets the image written locally first."""
    fs, root = fsspec.core.url_to_fs(output)
    fs.makedirs(root, exist_ok=True)
    refuse_non_empty(fs, root, output)
    local = isinstance(fs, LocalFileSystem)
    written: list[str] = []

    @contextmanager
    def place(name: str) -> Iterator[BinaryIO]:
        final = posixpath.join(root, name)
        partial = final + ".partial"
        local_path = Path(partial) if local else staging / name
        try:
            with local_path.open("wb") as out:
                yield out
            if not local:
                fs.put_file(str(local_path), partial)
                local_path.unlink()
            fs.mv(partial, final)
        except BaseException as exc:
            local_path.unlink(missing_ok=True)
            if fs.exists(partial):
                fs.rm(partial)
            if isinstance(exc, OSError):
                raise RecoveryError(
                    f"writing {name} into {output} failed: {exc}; no ISO of this set is left there"
                ) from exc
            raise
        written.append(final)

    try:
        yield place
    except BaseException:
        for final in written:
            fs.rm(final)
        raise
