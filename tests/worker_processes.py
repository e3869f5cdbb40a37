"""Restore workers and execute-plan as processes of their own, for the tests of the restore
workers: started, stopped mid-volume by their own progress, and the killed steps' retries checked."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psutil

from omni_recovery.db.connection import connect
from omni_recovery.execute.options import ExecuteOptions
from omni_recovery.execute.run_history import step_attempts
from omni_recovery.execute.tracking import SUCCEEDED
from omni_recovery.targets.driver import TargetRoot
from tests.backupset.conftest import PASSPHRASE
from tests.test_recovery import wait_until, while_running
from transforms.plan import Plan

Worker = subprocess.Popen[bytes]

# `omni-recovery worker` whose pool process stops itself (SIGSTOP) once it has put argv[1] files in
# place under the folders listed in argv[3], the first time only (marker file argv[2]: the process
# the pool starts next writes on): the stop lands mid-volume because of the worker's own progress.
SELF_STOPPING_WORKER = textwrap.dedent(
    """
    import itertools, json, os, signal, sys
    from pathlib import Path
    from omni_recovery.cli.main import main
    from omni_recovery.targets.driver import PartialFile

    files, marker, folders = int(sys.argv[1]), Path(sys.argv[2]), tuple(json.loads(sys.argv[3]))
    commit, placed = PartialFile.commit, itertools.count(1)

    def counted(self, **options):
        commit(self, **options)
        if self._full.startswith(folders) and next(placed) == files and not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGSTOP)

    PartialFile.commit = counted
    main(sys.argv[4:], prog_name="omni-recovery")
    """
)


def start_worker(
    queue: str,
    folder: Path,
    database_url: str,
    stop_after: list[str] | None = None,
    secret: bytes = PASSPHRASE,
    options: Sequence[str] = (),
    wrapper: Sequence[str] = (),
) -> Worker:
    """`omni-recovery worker --queue QUEUE [options]` as a process of its own, in a workspace of
    its own, with its own passphrase file (`secret`); `stop_after`: [files, marker, folders] for
    SELF_STOPPING_WORKER; `wrapper`: the command that runs it (e.g. `machine_accounts`)."""
    passphrase = folder / "passphrase"
    folder.mkdir(parents=True, exist_ok=True)
    passphrase.write_bytes(secret)
    arguments = ["worker", "--queue", queue, "--passphrase-file", str(passphrase)]
    arguments += ["--workspace", str(folder / "ws"), *options]
    if stop_after is None:
        command = [sys.executable, "-m", "omni_recovery.cli", *arguments]
    else:
        command = [sys.executable, "-c", SELF_STOPPING_WORKER, *stop_after, *arguments]
    env = dict(os.environ, OMNI_RECOVERY_DATABASE_URL=database_url)
    env.pop("OMNI_RECOVERY_PASSPHRASE", None)
    log = (folder / "worker.log").open("wb")
    return subprocess.Popen([*wrapper, *command], env=env, stdout=log, stderr=subprocess.STDOUT)


@contextmanager
def running_workers(
    queues: list[str],
    folder: Path,
    database_url: str,
    stopping: dict[str, list[str]] | None = None,
    secrets: dict[str, bytes] | None = None,
    options: Sequence[str] = (),
    wrapper: Sequence[str] = (),
) -> Iterator[dict[str, Worker]]:
    """queue → its running worker (`stopping`: queue → SELF_STOPPING_WORKER's arguments; `secrets`:
    queue → a passphrase other than the set's; `wrapper`: start_worker's); all stopped on leaving,
    whatever happened inside, as is a worker the caller put in the mapping in place of one."""
    started: dict[str, Worker] = {}
    try:
        for queue in queues:
            secret = (secrets or {}).get(queue, PASSPHRASE)
            stop_after = (stopping or {}).get(queue)
            worker = start_worker(queue, folder / queue, database_url, stop_after, secret, options, wrapper)
            started[queue] = worker
        yield started
    finally:
        for proc in started.values():
            if proc.poll() is None:
                for child in psutil.Process(proc.pid).children(recursive=True):
                    child.send_signal(signal.SIGCONT)  # a stopped pool process would hold up the shutdown
                proc.send_signal(signal.SIGTERM)
        for proc in started.values():
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def machine_accounts(passwd: Path) -> list[str]:
    """A wrapper for start_worker: the worker runs on a machine whose user accounts are `passwd`
    (bound over /etc/passwd in a mount namespace of its own; needs root)."""
    bind = 'mount --bind "$0" /etc/passwd && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", bind, str(passwd)]


def start_execute_plan(
    plan_path: Path, folder: Path, database_url: str, options: Sequence[str] = ()
) -> Worker:
    """`omni-recovery execute-plan --executor celery [options]`, its output in folder/execute-plan.log
    (a file: a pipe nobody reads while waiting could fill up)."""
    command = [sys.executable, "-m", "omni_recovery.cli", "execute-plan", "--plan", str(plan_path)]
    command += ["--executor", "celery", "--workspace", str(folder / "ws"), *options]
    env = dict(
        os.environ, OMNI_RECOVERY_PASSPHRASE=PASSPHRASE.decode(), OMNI_RECOVERY_DATABASE_URL=database_url
    )
    log = (folder / "execute-plan.log").open("wb")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


@contextmanager
def executing_plan(
    plan_path: Path, folder: Path, database_url: str, options: Sequence[str] = ()
) -> Iterator[Worker]:
    """start_execute_plan's process, waited for on leaving (as long as a loaded machine needs);
    killed if still running when the body failed or the wait ran out."""
    control = start_execute_plan(plan_path, folder, database_url, options)
    try:
        yield control
        control.wait(timeout=900)
    finally:
        if control.poll() is None:
            control.kill()
            control.wait()


def stopping_mid_volume(
    plan: Plan, queue_of: dict[str, str], folder: Path
) -> tuple[str, Path, dict[str, list[str]]]:
    """The queue of the first volume step (the victim), the marker its worker writes when it stops
    itself, and running_workers' `stopping` for it: at its third file put in place in a pool."""
    victim = next(queue_of[s.id] for s in plan.steps if s.phase == "volumes")
    folders = json.dumps([TargetRoot(p.root, create=False).root + "/" for p in plan.pools])
    marker = folder / "stopped-pid"
    return victim, marker, {victim: ["3", str(marker), folders]}


def stopped_pool_process(control: Worker, marker: Path, worker: Worker) -> psutil.Process:
    """The pool process of `worker` once it has stopped itself mid-volume (SELF_STOPPING_WORKER)."""
    stops = while_running(control, lambda: marker.exists() and marker.read_text(), "a volume's worker stops")
    wait_until(stops, "a volume step's worker process stops", seconds=900)
    stopped = psutil.Process(int(marker.read_text()))
    wait_until(lambda: stopped.status() == psutil.STATUS_STOPPED, "the worker process stands still")
    assert stopped.ppid() == worker.pid, "the pool process of the volume's worker"
    return stopped


def assert_killed_steps_retried(
    control: Worker, folder: Path, database_url: str, plan_path: Path, queue_of: dict[str, str], victim: str
) -> str:
    """execute-plan ended well; each step in flight on the killed worker (up to the parallel factor)
    has an attempt without outcome and one later attempt that succeeded on its queue; the run id."""
    output = (folder / "execute-plan.log").read_text()
    assert control.returncode == 0, output
    run_id = re.search(r"recovery run (run-\S+) finished", output)
    assert run_id, output
    with connect(database_url) as conn:
        attempts = step_attempts(conn, run_id[1])
    killed = [a for a in attempts if a.outcome is None]
    assert 1 <= len(killed) <= ExecuteOptions(plan_path).parallel, killed
    for attempt in killed:
        assert attempt.worker == f"{victim}@{socket.gethostname()}" and queue_of[attempt.step_id] == victim
        again = [a for a in attempts if a.step_id == attempt.step_id and a.attempt > attempt.attempt]
        assert [(a.outcome, a.worker) for a in again] == [(SUCCEEDED, attempt.worker)], "retried on its queue"
    return run_id[1]
