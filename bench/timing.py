"""Wall and CPU time of a benchmark's contenders (imported by the scripts beside it)."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from pathlib import Path


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads) and of its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and CPU seconds of one run."""
    cpu = cpu_seconds()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start, cpu_seconds() - cpu


REPORTED = Path("/sys/module/page_reporting/parameters/reported_kib")


def settle_memory(quiet: float = 1.0, limit: float = 15.0) -> None:
    """Wait until the kernel stops handing freed memory back to the hypervisor.

    On these VMs free page reporting gives freed pages back to the host within about a second,
    and faulting such pages in again costs several times more than reusing pages freed just
    before: a contender started right after the previous one's output was deleted runs faster
    than one started a second later. Each contender starts after this, so both start alike.
    Without page reporting (no such file) it only waits `quiet` seconds.
    """
    deadline = time.monotonic() + limit
    last = _reported()
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = _reported()
        if now == last:
            return
        last = now


def _reported() -> int | None:
    try:
        return int(REPORTED.read_text())
    except (OSError, ValueError):
        return None
