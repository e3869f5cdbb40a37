"""A lost worker's task handed out again with the default broker (kombu's SQLAlchemy transport on
the recovery PostgreSQL): the control node's watchdog (pipelines/worker_watchdog.py).

First its looks, one at a time, on real Celery messages in a real database, with the locks held by
a real process standing in for a worker (`announce_worker`, then a task started): left alone while
that process lives, even stopped; handed out at the second look once it is killed; never when the
task has a result or Celery put it back itself. Then a whole worker lost mid-volume (main and pool
processes SIGKILLed) under `execute-plan --executor celery` with the default broker: the control
node says its queue has no worker, the worker started again takes the task, and the run finishes
as the in-process one.
"""

from __future__ import annotations

import gc
import json
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from celery import Celery
from kombu import Connection
from kombu.transport.sqlalchemy import Channel

from omni_recovery.db.connection import connect
from omni_recovery.db.schema import init_database
from omni_recovery.settings import Settings
from omni_recovery.targets.driver import TargetRoot
from pipelines.celery_workers import celery_urls, prepare_broker_tables
from pipelines.worker_watchdog import Watchdog
from tests.backupset.conftest import DemoSet
from tests.conftest import PostgresForTests
from tests.test_parallel_steps import comparable
from tests.test_recovery import restored_tree, wait_until, while_running
from tests.test_restore_workers import (  # noqa: F401
    assert_whole_run_succeeded,
    in_process_tree,
    planned_for_workers,
    recovery_folder,
    three_nodes,
)
from tests.worker_processes import (
    assert_killed_steps_retried,
    running_workers,
    start_execute_plan,
    start_worker,
    stopped_pool_process,
)

# A process holding what a worker's would: its queue's lock (main process) and a task's (the
# process running it), until killed; it says "ready" once it holds them.
LOCK_HOLDER = textwrap.dedent(
    """
    import sys
    from pipelines.worker_watchdog import _task_started, announce_worker

    announce_worker(sys.argv[1], [sys.argv[2]])
    _task_started(sys.argv[3])
    print("ready", flush=True)
    sys.stdin.read()
    """
)


@pytest.fixture(scope="module")
def database_url(postgres_server: PostgresForTests) -> Iterator[str]:
    """This module's own recovery database (and the broker's, results' and Dagster's tables)."""
    url = postgres_server.create_database("omni_lost_default")
    init_database(url)
    yield url
    postgres_server.drop_database(url)


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[Celery]:
    """A Celery app on the default broker and result backend of the recovery database."""
    settings = Settings(workspace=tmp_path / "ws", database_url=database_url)
    broker, backend = celery_urls(settings, None)
    prepare_broker_tables(settings, broker)
    app = Celery(broker=broker, backend=backend)
    yield app
    app.close()
    gc.collect()  # kombu's channels' sessions give their connections back to its engines only then
    for engine, _ in Channel._engines.values():  # which kombu keeps, connected, for the process
        engine.dispose()


def sent_and_taken(app: Celery, queue: str) -> str:
    """A task sent to `queue` and taken from it (as a worker takes it: the row made invisible);
    its id."""
    task_id = str(uuid.uuid4())
    app.send_task("omni.watched", queue=queue, task_id=task_id)
    with app.connection_for_read() as conn:
        taken = conn.default_channel._get(queue)  # the transport's own taking of a message
    assert taken["headers"]["id"] == task_id
    return task_id


def visible(database_url: str, task_id: str) -> list[bool]:
    """Each row of the task in kombu_message: visible or not."""
    with connect(database_url) as conn:
        rows = conn.execute(
            "SELECT visible FROM kombu_message WHERE payload::json -> 'headers' ->> 'id' = %s ORDER BY id",
            (task_id,),
        ).fetchall()
    return [bool(row[0]) for row in rows]


@pytest.fixture
def queue() -> str:
    """A queue of the test's own (the database is the module's)."""
    return f"omni-watched-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def holder(database_url: str, queue: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A lock-holding process of `queue` and of a task id not sent yet."""
    task_id = str(uuid.uuid4())
    command = [sys.executable, "-c", LOCK_HOLDER, database_url, queue, task_id]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc, task_id
    finally:
        proc.kill()
        proc.wait()


def test_a_task_is_left_while_its_process_lives_even_stopped_and_handed_out_once_it_is_killed(
    app: Celery, database_url: str, queue: str, holder: tuple[subprocess.Popen[str], str]
) -> None:
    proc, task_id = holder
    said: list[str] = []
    watchdog = Watchdog(database_url, said.append)
    watchdog.start()
    app.send_task("omni.watched", queue=queue, task_id=task_id)
    with app.connection_for_read() as conn:
        assert conn.default_channel._get(queue)["headers"]["id"] == task_id
    proc.send_signal(signal.SIGSTOP)  # alive, but standing still: a slow worker
    assert [watchdog.look(), watchdog.look(), watchdog.look()] == [[], [], []]
    assert visible(database_url, task_id) == [False]
    proc.kill()
    proc.wait()

    def suspected() -> object:
        assert watchdog.look() == [], "a first look never hands out"
        return watchdog.suspected

    wait_until(suspected, "the watchdog sees the task's lock let go", seconds=120)
    handed = watchdog.look()
    assert [m.task_id for m in handed] == [task_id]
    assert visible(database_url, task_id) == [True]
    gone = f"on queue {queue} is gone (no result, no process holding it): handed out again on its queue"
    assert said == [f"  the worker running task {task_id} {gone}"]


def test_a_task_with_a_result_or_put_back_by_celery_is_not_handed_out(
    app: Celery, database_url: str, queue: str
) -> None:
    watchdog = Watchdog(database_url, lambda line: None)
    watchdog.start()
    finished = sent_and_taken(app, queue)
    app.backend.store_result(finished, None, "SUCCESS")
    put_back = sent_and_taken(app, queue)
    lost = sent_and_taken(app, queue)
    with app.connection_for_read() as conn:  # as Celery does when a worker's pool process is lost
        conn.default_channel._put(queue, json.loads(_payload(database_url, put_back)))
    assert watchdog.look() == []
    assert [m.task_id for m in watchdog.look()] == [lost]
    assert visible(database_url, finished) == [False]
    assert visible(database_url, put_back) == [False, True]
    assert visible(database_url, lost) == [True]


def _payload(database_url: str, task_id: str) -> str:
    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT payload FROM kombu_message WHERE payload::json -> 'headers' ->> 'id' = %s", (task_id,)
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_a_task_waiting_on_a_queue_nobody_listens_to_is_named_once_with_how_to_start_a_worker(
    app: Celery, database_url: str, queue: str, holder: tuple[subprocess.Popen[str], str]
) -> None:
    said: list[str] = []
    watchdog = Watchdog(database_url, said.append, notice_after=0)
    watchdog.start()
    app.send_task("omni.watched", queue=queue, task_id=str(uuid.uuid4()))
    app.send_task("omni.watched", queue="omni-nobody", task_id=str(uuid.uuid4()))
    watchdog.look()
    watchdog.look()
    assert said == [
        "  no restore worker listens on queue omni-nobody: start one with "
        "`omni-recovery worker --queue omni-nobody` (still waiting)"
    ]
    with Connection(app.conf.broker_url) as conn:
        assert conn.default_channel._size("omni-nobody") == 1  # still there, for a worker to come


def test_a_whole_worker_lost_mid_volume_on_the_default_broker_is_handed_out_again_when_it_is_back(
    three_nodes: DemoSet,  # noqa: F811
    tmp_path: Path,
    database_url: str,
    recovery_folder: Path,  # noqa: F811
    in_process_tree: dict[str, str],  # noqa: F811
) -> None:
    setup, queue_of = planned_for_workers(three_nodes, recovery_folder, database_url)
    victim = next(queue_of[s.id] for s in setup.plan.steps if s.phase == "volumes")
    folders = json.dumps([TargetRoot(p.root, create=False).root + "/" for p in setup.plan.pools])
    marker = tmp_path / "stopped-pid"
    queues = sorted(set(queue_of.values()))
    log = tmp_path / "execute-plan.log"
    with running_workers(
        queues, tmp_path / "workers", database_url, {victim: ["3", str(marker), folders]}
    ) as workers:
        control = start_execute_plan(setup.plan_path, tmp_path, database_url)
        try:
            pool = stopped_pool_process(control, marker, workers[victim])
            workers[victim].kill()  # SIGKILL the worker's main process: nothing is given back
            workers[victim].wait()
            pool.kill()  # and its pool process, mid-volume: the whole worker is gone
            psutil.wait_procs([pool], timeout=60)
            unheard = f"no restore worker listens on queue {victim}: start one with `omni-recovery worker"
            said = while_running(
                control, lambda: unheard in log.read_text(), "the queue without worker is named"
            )
            wait_until(said, "execute-plan names the queue without worker", seconds=900)
            again = tmp_path / "workers" / f"{victim}-again"
            workers[victim] = start_worker(victim, again, database_url)
            control.wait(timeout=900)
        finally:
            if control.poll() is None:
                control.kill()
                control.wait()
    assert (
        f"on queue {victim} is gone (no result, no process holding it): handed out again" in log.read_text()
    )
    run_id = assert_killed_steps_retried(control, tmp_path, database_url, setup.plan_path, queue_of, victim)
    assert_whole_run_succeeded(database_url, run_id)
    assert comparable(restored_tree(setup.plan, tmp_path / "tree")) == in_process_tree
