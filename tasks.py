#!/usr/bin/env python3
"""Set up and run: `python3 tasks.py demo` (the main job) or `python3 tasks.py test` (lint, types,
layer contracts, tests).

Needs only Python 3.11+: it makes ./.venv, installs the project into it from pyproject.toml,
and runs the command there. Extra arguments go to the command (`python3 tasks.py test -k isofs`).
The tests run in parallel processes (`parallel_tests`); `python3 tasks.py test -n 0` runs them in one.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def ensure_environment() -> None:
    """Create the venv and (re)install the project when pyproject.toml changed since the last install."""
    if sys.version_info < (3, 11):  # noqa: UP036 (this script may be started by an older python3)
        sys.exit("omni-recovery needs Python 3.11 or newer")
    stamp = VENV / ".installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("creating .venv", flush=True)
        venv.create(VENV, with_pip=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]"], check=True)
    stamp.write_text(wanted)


def run(*command: str) -> None:
    result = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=ROOT)
    if result.returncode:
        sys.exit(result.returncode)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("demo", "test"):
        sys.exit(__doc__)
    ensure_environment()
    task, extra = sys.argv[1], sys.argv[2:]
    if task == "demo":
        run("omni-recovery", "demo", *extra)
    else:
        run("ruff", "check", ".")
        run("ruff", "format", "--check", ".")
        run("mypy")
        run("lint-imports")  # the layer contracts in pyproject.toml
        run("python", "-m", "pytest", "-q", *parallel_tests(), *extra)


def parallel_tests() -> list[str]:
    """pytest-xdist's options: one worker process per CPU, at most 4 (each starts its own PostgreSQL
    server and builds the shared sets once), and every module's tests in one worker, so a module's
    fixtures (its sets, its Dagster workspace) are built once; modules handed out in collection
    order (tests/conftest.py puts the longest first). `-n 0` after `test` turns it off."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return ["-n", str(min(4, cpus)), "--dist", "loadscope", "--no-loadscope-reorder"]


if __name__ == "__main__":
    main()
