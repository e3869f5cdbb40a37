"""Wall and CPU time of a benchmark's contenders (imported by the scripts beside it)."""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


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


# Where restores and extractions write by default: tmpfs, since /tmp is ext4 mounted with `discard`
# here, which makes creating many files right after deleting many others unsteady.
TMPFS: Path | None = Path("/dev/shm") if Path("/dev/shm").is_dir() else None


def require_bsdtar() -> str:
    """The path of bsdtar, the baseline of the restore benchmarks; exits saying how to install it."""
    found = shutil.which("bsdtar")
    if found is None:
        sys.exit("bsdtar is missing: the baseline cannot run. apt-get install -y libarchive-tools")
    return found


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


def child_peak(
    command: list[str],
    env: dict[str, str] | None = None,
    stdout: int | IO[Any] | None = subprocess.DEVNULL,
    stderr: int | IO[Any] | None = None,
) -> tuple[float, int, int]:
    """Wall seconds, peak RSS in bytes and exit code of one child process.

    The peak is the child's own VmHWM, read from /proc every few milliseconds while it runs: the
    ru_maxrss that wait4 reports starts from this (larger) process's peak, which a child started by
    fork or vfork inherits across exec, so it would hide a small child's figure behind ours.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _high_water_mark(proc.pid))
        time.sleep(0.003)
    return time.perf_counter() - start, peak, proc.returncode


def run_measured(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS in bytes of one child process that must succeed."""
    elapsed, peak, code = child_peak(command, env)
    if code != 0:
        sys.exit(f"{command[0]} failed")
    return elapsed, peak


def _high_water_mark(pid: int) -> int:
    """The process's peak resident set (VmHWM) in bytes; 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
