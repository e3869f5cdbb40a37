"""The run's `--io-priority` applied to the process that reads the ISOs and writes the targets.

Best effort, Linux only (psutil's ionice): `low` is the idle class, `high` best-effort level 0,
`normal` whatever class the process had before this module first changed it. A restore worker's
pool process serves run after run, so a `normal` run after a `low` one must give that back.
"""

from __future__ import annotations

from typing import Any

_STARTING: list[Any] = []  # the process's class and level before the first change


def set_io_priority(priority: str) -> None:
    """Give this process the I/O scheduling class of `priority` (low, normal, high)."""
    import psutil

    if not hasattr(psutil, "IOPRIO_CLASS_IDLE"):
        return
    process = psutil.Process()
    if not _STARTING:
        _STARTING.append(process.ionice())
    if priority == "low":
        process.ionice(psutil.IOPRIO_CLASS_IDLE)
    elif priority == "high":
        process.ionice(psutil.IOPRIO_CLASS_BE, value=0)
    else:
        starting = _STARTING[0]
        with_level = starting.ioclass in (psutil.IOPRIO_CLASS_BE, psutil.IOPRIO_CLASS_RT)
        process.ionice(starting.ioclass, value=starting.value if with_level else None)
