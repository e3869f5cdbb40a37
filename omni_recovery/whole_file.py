"""A small text file written whole: what a reader finds under its name is the old file or the new.

The plan, its graph, the report, the plan overlay, an inventory the scan wrote and the ISO registry
are read by other processes (the UI, a resumed run, the operator's editor) while they may be
rewritten. Each is written under a temporary name in the same folder, flushed to disk, then renamed
over the old one: a crash leaves the old file or the new, never half of one. Two writers at once
each use their own temporary name; the last rename wins.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_text_whole"]


def write_text_whole(path: Path, text: str) -> None:
    """`text` at `path`, replacing what was there only once all of it is on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
