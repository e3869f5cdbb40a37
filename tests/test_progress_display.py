"""The live progress display: a tqdm bar on a real terminal (a pseudo-terminal), plain lines elsewhere,
each with the phase, the running steps, files and bytes of the planned total, rate and ETA."""

from __future__ import annotations

import io
import os
import pty
from datetime import UTC, datetime, timedelta

from omni_recovery.cli.watch import ProgressDisplay, progress_line
from omni_recovery.execute.progress import PlannedTotals, RunProgress

MiB = 2**20
START = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def reading(seconds: float, done: int, files: int, *, finished: bool = False) -> RunProgress:
    return RunProgress(
        run_id="run-1",
        status="succeeded" if finished else "running",
        finished=finished,
        phase="volumes",
        running=() if finished else ("volume/billing/pgdata",),
        steps_done=7,
        files_done=files,
        bytes_done=done,
        totals=PlannedTotals(steps=20, files=400, bytes=100 * MiB),
        at=START + timedelta(seconds=seconds),
    )


def test_a_plain_line_has_the_rate_since_the_first_reading_and_the_eta_of_what_is_left():
    first = reading(0, 10 * MiB, 40)
    line = progress_line(reading(10, 30 * MiB, 120), first)
    assert line == (
        "progress run-1: running, phase volumes, running volume/billing/pgdata; steps 7/20, files 120/400, "
        "30.0 of 100.0 MiB, 2.0 MiB/s, ETA 0:00:35"
    )
    done = progress_line(reading(20, 100 * MiB, 400, finished=True), first)
    assert done.endswith("100.0 of 100.0 MiB, 4.5 MiB/s, ETA -") and "running -;" in done
    unknown = RunProgress(**{**first.__dict__, "totals": PlannedTotals(20, None, None)})
    assert "files 40/?, 10.0 of ? MiB" in progress_line(unknown, first)


def test_off_a_terminal_each_reading_is_one_line():
    out = io.StringIO()
    display = ProgressDisplay(out)
    for seconds, done in ((0, 0), (1, 5 * MiB), (2, 9 * MiB)):
        display.show(reading(seconds, done, 10))
    display.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and all(line.startswith("progress run-1: running") for line in lines)


def test_on_a_terminal_a_bar_shows_bytes_of_the_total_with_the_step_and_files():
    main, secondary = pty.openpty()
    with os.fdopen(secondary, "w") as terminal:
        display = ProgressDisplay(terminal)
        assert display.terminal
        display.show(reading(0, 10 * MiB, 40))
        display.show(reading(1, 60 * MiB, 240))
        display.close()
    drawn = b""
    while chunk := _read(main):
        drawn += chunk
    os.close(main)
    text = drawn.decode(errors="replace")
    assert "volumes: volume/billing/pgdata" in text and "files 240/400" in text
    assert "60.0M/100M" in text and "\r" in text and "progress run-1" not in text


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # the other end closed: all read
        return b""
