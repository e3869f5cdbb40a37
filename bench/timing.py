"""Wall and CPU time of a benchmark's contenders (imported by the scripts beside it)."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable


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
