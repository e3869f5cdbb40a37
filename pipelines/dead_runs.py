"""Dagster runs whose process is gone: marked failed, so the UI stops showing them as running.

Every run the command line starts carries PROCESS_TAG (`host:pid`). A run of this host still
unfinished whose process no longer exists (killed, crashed) will never end on its own: `status`,
`execute-plan` and a restore launched from the UI mark such runs failed once they hold the run.
"""

from __future__ import annotations

import os
import socket

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

# The process running a command-line run, so that a run whose process died can be told from a live one.
PROCESS_TAG = "omni-recovery/process"


# A run in one of these states whose process is gone will never finish on its own.
UNFINISHED = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


def fail_dead_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed every unfinished run that a command line of this host started in a process that is
    gone (killed, crashed), so the UI stops showing it as running; their run ids."""
    host = socket.gethostname()
    dead = []
    for run in instance.get_runs(filters=RunsFilter(statuses=UNFINISHED)):
        owner = run.tags.get(PROCESS_TAG, "")
        name, _, pid = owner.rpartition(":")
        if name == host and pid.isdigit() and not _alive(int(pid)):
            instance.report_run_failed(run, f"the process that ran it ({owner}) is gone: killed or crashed")
            dead.append(run.run_id)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
