"""The live progress of a recovery run, read from the recovery database while the run goes on.

`watching(url, plan_id)` runs a thread beside execute-plan and deploy-directors that finds the plan's
run once it is opened and reads its counters (omni_recovery.execute.progress) every `every` seconds;
`watch_run(url, run_id)` does the same in the foreground for `status --watch`, until the run stops.
On a terminal a tqdm bar shows bytes done of the planned total with rate and ETA, the phase and the
running step in front and the files done behind; elsewhere (a log, a pipe) one plain line per reading.
A reading that fails (the embedded server not up yet) is skipped, never stops the run.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

import psycopg

from omni_recovery.db.connection import connect
from omni_recovery.execute.progress import RunProgress, open_run_of_plan, planned_totals, read_progress
from omni_recovery.execute.run_lock import run_holder
from omni_recovery.execute.tracking import RUNNING, Connection

TERMINAL_SECONDS = 0.5
MiB = 2**20


class ProgressDisplay:
    """A tqdm bar on a terminal, plain lines elsewhere; `show` takes each reading."""

    def __init__(self, out: TextIO) -> None:
        self.out, self.terminal = out, out.isatty()
        self._bar: Any = None
        self._first: RunProgress | None = None

    def show(self, reading: RunProgress) -> None:
        self._first = self._first or reading
        if self.terminal:
            self._draw(reading)
        else:
            print(progress_line(reading, self._first), file=self.out, flush=True)

    def _draw(self, reading: RunProgress) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(
                total=reading.totals.bytes, unit="B", unit_scale=True, unit_divisor=1024, file=self.out
            )
        self._bar.set_description_str(f"{reading.phase}: {', '.join(reading.running) or '-'}", refresh=False)
        self._bar.set_postfix_str(f"files {_of(reading.files_done, reading.totals.files)}", refresh=False)
        self._bar.update(max(0, reading.bytes_done - self._bar.n))

    def echo(self, line: str) -> None:
        """A line of the command's own output, printed above the bar on a terminal."""
        from tqdm import tqdm

        tqdm.write(line, file=self.out)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def progress_line(now: RunProgress, first: RunProgress) -> str:
    """One reading as a line: phase, running steps, steps, files and bytes of the totals, rate, ETA."""
    seconds = (now.at - first.at).total_seconds()
    rate = (now.bytes_done - first.bytes_done) / seconds if seconds > 0 else 0.0
    left = (now.totals.bytes or 0) - now.bytes_done
    eta = f"ETA {_clock(left / rate)}" if rate > 0 and left > 0 and not now.finished else "ETA -"
    running = ", ".join(now.running) or "-"
    return (
        f"progress {now.run_id}: {now.status}, phase {now.phase}, running {running}; "
        f"steps {_of(now.steps_done, now.totals.steps)}, files {_of(now.files_done, now.totals.files)}, "
        f"{_mib(now.bytes_done)} of {_mib(now.totals.bytes)} MiB, {rate / MiB:.1f} MiB/s, {eta}"
    )


def _of(done: int, total: int | None) -> str:
    return f"{done}/{total if total is not None else '?'}"


def _mib(count: int | None) -> str:
    return "?" if count is None else f"{count / MiB:.1f}"


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


@contextmanager
def watching(
    url: str, plan_id: str, every: float, out: TextIO = sys.stdout, phases: Collection[str] | None = None
) -> Iterator[ProgressDisplay]:
    """Show the progress of `plan_id`'s run in a thread while the body runs, then one last reading;
    of the steps of `phases` only when given (the command runs only those)."""
    display = ProgressDisplay(out)
    stop = threading.Event()
    since = datetime.now(UTC)
    seen: list[str] = []
    thread = threading.Thread(
        target=_poll,
        args=(url, plan_id, since, seen, display, stop, _interval(display, every), phases),
        daemon=True,
    )
    thread.start()
    try:
        yield display
    finally:
        stop.set()
        thread.join()
        display.close()


def _interval(display: ProgressDisplay, every: float) -> float:
    return min(every, TERMINAL_SECONDS) if display.terminal else every


def _poll(
    url: str,
    plan_id: str,
    since: datetime,
    seen: list[str],
    display: ProgressDisplay,
    stop: threading.Event,
    every: float,
    phases: Collection[str] | None,
) -> None:
    """Read and show until `stop`, then once more (the run's last counts)."""
    conn: Connection | None = None
    totals = None
    try:
        while True:
            last = stop.is_set()
            try:
                conn = conn or connect(url)
                run_id = seen[0] if seen else open_run_of_plan(conn, plan_id, since)
                if run_id is not None:
                    seen[:1] = [run_id]
                    totals = totals or planned_totals(conn, run_id, phases)
                    display.show(read_progress(conn, run_id, totals))
            except (psycopg.Error, OSError):
                conn = None  # not up yet, or gone: the run itself says what went wrong
            if last:
                return
            stop.wait(every)
    finally:
        if conn is not None:
            conn.close()


def watch_run(conn: Connection, run_id: str, plan_id: str, every: float) -> RunProgress:
    """Show `run_id`'s progress every `every` seconds until it is finished or no process holds it."""
    display = ProgressDisplay(sys.stdout)
    totals = planned_totals(conn, run_id)
    try:
        while True:
            reading = read_progress(conn, run_id, totals)
            display.show(reading)
            if reading.finished or reading.status != RUNNING:
                return reading
            if run_holder(conn, plan_id) is None:  # it may have ended since the reading: show how
                final = read_progress(conn, run_id, totals)
                display.show(final)
                return final
            time.sleep(_interval(display, every))
    finally:
        display.close()
