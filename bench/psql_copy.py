"""The `psql \\copy` baseline of the catalog benchmarks: one psql command, run and timed."""

from __future__ import annotations

import subprocess
import time


def psql(url: str, command: str) -> str:
    """Run one psql command (quiet, stopping on error) and return its output; exit with psql's error."""
    done = subprocess.run(
        ["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c", command], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"psql failed: {done.stderr}")
    return done.stdout


def timed_psql(url: str, command: str) -> tuple[float, str]:
    """Seconds one psql command took (e.g. a `\\copy ... FROM`), and its output."""
    start = time.perf_counter()
    output = psql(url, command)
    return time.perf_counter() - start, output
