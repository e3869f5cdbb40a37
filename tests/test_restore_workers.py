"""Restore workers: a recovery through dagster-celery, each node's steps on its own worker.

A demo environment of three nodes, backed up and deeply validated; three real `omni-recovery
worker` processes, one per node of its same-shaped inventory, each serving its node's queue (the
storage pools' queues are set to the nodes' in the inventory), with the broker and result backend
on the recovery database's PostgreSQL. The recovery run records each attempt under the worker of
its step's node, and the restored tree is the in-process one's.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from omni_recovery.adapt.inventory import load_inventory
from omni_recovery.adapt.inventory_model import inventory_to_yaml
from omni_recovery.cli.main import main
from omni_recovery.db.connection import connect
from omni_recovery.db.schema import init_database
from omni_recovery.envstate.demo import DemoOptions
from omni_recovery.errors import RecoveryError
from omni_recovery.execute.options import ExecuteOptions
from omni_recovery.execute.run_history import step_attempts
from omni_recovery.execute.tracking import SKIPPED, SUCCEEDED
from omni_recovery.settings import Settings, load_settings
from omni_recovery.targets.driver import TargetRoot
from omni_recovery.validate import store, validate
from pipelines.recovery_runner import execute_recovery
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.conftest import PostgresForTests
from tests.demo_fixtures import SMALL_SET, signed_set, write_demo
from tests.test_parallel_steps import comparable, run_steps
from tests.test_recovery import (  # noqa: F401
    Setup,
    make_setup,
    restored_tree,
    wait_until,
    while_running,
    workspace,
)
from transforms.plan.node_groups import CONTROL_PHASES, step_queues


@pytest.fixture(scope="module")
def database_url(postgres_server: PostgresForTests) -> Iterator[str]:
    """This module's own recovery database: it also holds the broker's, the results' and the
    Dagster instance's tables of the restore workers."""
    url = postgres_server.create_database("omni_workers")
    init_database(url)
    yield url
    postgres_server.drop_database(url)


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> DemoSet:
    """A backup set of a three-node demo environment, its deep validation on record."""
    env = write_demo(
        tmp_path_factory, "three-nodes", DemoOptions(nodes=3, volume_scale="tiny", applications=6)
    )
    demo = signed_set(env, tmp_path_factory.mktemp("three-nodes-set"), SMALL_SET)
    report = validate(str(demo.output), demo.trusted, PASSPHRASE, deep=True)
    assert report.passed
    with connect(database_url) as conn:
        store(conn, report)
    return demo


def with_pools_on_nodes(setup: Setup) -> dict[str, str]:
    """Give each storage pool of the setup's inventory the queue of a node (round robin), as pools
    on the nodes' own disks would be; step id → the queue it is routed to."""
    path = setup.folder / "inventory.yaml"
    inventory = load_inventory(path, allow_system_root=True)
    queues = [n.queue for n in inventory.nodes]
    pools = tuple(
        dataclasses.replace(p, worker_queue=queues[i % len(queues)]) for i, p in enumerate(inventory.storage)
    )
    inventory = dataclasses.replace(inventory, storage=pools)
    path.write_text(inventory_to_yaml(inventory))
    return step_queues(
        setup.plan, {n.name: n.queue for n in inventory.nodes}, {p.name: p.queue for p in inventory.storage}
    )


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
) -> Worker:
    """`omni-recovery worker --queue QUEUE` as a process of its own, in a workspace of its own, with
    its own passphrase file (`secret`); `stop_after`: [files, marker, folders] for SELF_STOPPING_WORKER."""
    passphrase = folder / "passphrase"
    folder.mkdir(parents=True, exist_ok=True)
    passphrase.write_bytes(secret)
    arguments = [
        "worker",
        "--queue",
        queue,
        "--passphrase-file",
        str(passphrase),
        "--workspace",
        str(folder / "ws"),
    ]
    if stop_after is None:
        command = [sys.executable, "-m", "omni_recovery.cli", *arguments]
    else:
        command = [sys.executable, "-c", SELF_STOPPING_WORKER, *stop_after, *arguments]
    env = dict(os.environ, OMNI_RECOVERY_DATABASE_URL=database_url)
    env.pop("OMNI_RECOVERY_PASSPHRASE", None)
    log = (folder / "worker.log").open("wb")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


@contextmanager
def running_workers(
    queues: list[str],
    folder: Path,
    database_url: str,
    stopping: dict[str, list[str]] | None = None,
    secrets: dict[str, bytes] | None = None,
) -> Iterator[dict[str, Worker]]:
    """queue → its running worker (`stopping`: queue → SELF_STOPPING_WORKER's arguments; `secrets`:
    queue → a passphrase other than the set's); all stopped on leaving, whatever happened inside."""
    started: dict[str, Worker] = {}
    try:
        for queue in queues:
            secret = (secrets or {}).get(queue, PASSPHRASE)
            started[queue] = start_worker(
                queue, folder / queue, database_url, (stopping or {}).get(queue), secret
            )
        yield started
    finally:
        for proc in started.values():
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.send_signal(signal.SIGCONT)  # a stopped pool process would hold up the shutdown
            proc.send_signal(signal.SIGTERM)
        for proc in started.values():
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def recovery_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where every recovery of this module is planned and restored (one after the other: the
    restored documents name their new paths, so trees compare only within one folder)."""
    return tmp_path_factory.mktemp("recovery")


@pytest.fixture(scope="module")
def in_process_tree(
    three_nodes: DemoSet, recovery_folder: Path, tmp_path_factory: pytest.TempPathFactory, database_url: str
) -> dict[str, str]:
    """What the in-process recovery of the set restores (but the per-run certificates)."""
    setup = make_setup(three_nodes, recovery_folder)
    own = tmp_path_factory.mktemp("in-process")
    settings = Settings(workspace=own / "ws", database_url=database_url)
    summary = execute_recovery(settings, ExecuteOptions(setup.plan_path), PASSPHRASE)
    assert summary.report and "SUCCEEDED" in Path(summary.report).read_text()
    tree = comparable(restored_tree(setup.plan, own / "tree"))
    shutil.rmtree(recovery_folder / "infra")
    return tree


def planned_for_workers(demo: DemoSet, folder: Path, database_url: str) -> tuple[Setup, dict[str, str]]:
    """The set planned onto a same-shaped inventory whose pools are served by the nodes' workers,
    nothing restored yet and no run of it open (a test that failed leaves none to resume); step id
    → its queue, one for each of the three nodes."""
    shutil.rmtree(folder / "infra", ignore_errors=True)
    with connect(database_url) as conn:
        conn.execute("UPDATE omni.recovery_runs SET finished_at = now() WHERE finished_at IS NULL")
    setup = make_setup(demo, folder)
    queue_of = with_pools_on_nodes(setup)
    queues = sorted(set(queue_of.values()))
    assert queues == sorted(f"omni-{n.name}" for n in setup.plan.nodes) and len(queues) == 3
    return setup, queue_of


def assert_whole_run_succeeded(database_url: str, run_id: str) -> None:
    statuses = {step_id: s.status for step_id, s in run_steps(database_url, run_id).items()}
    # No --signing-key: the post-recovery backup is skipped, as in process.
    assert {s: status for s, status in statuses.items() if status != SUCCEEDED} == {
        "backup/post-recovery": SKIPPED
    }


def test_each_node_s_steps_run_on_its_worker_and_restore_what_the_in_process_run_does(
    three_nodes: DemoSet,
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    database_url: str,
    recovery_folder: Path,
    in_process_tree: dict[str, str],
) -> None:
    setup, queue_of = planned_for_workers(three_nodes, recovery_folder, database_url)
    options = ExecuteOptions(setup.plan_path, executor="celery")
    with running_workers(sorted(set(queue_of.values())), tmp_path / "workers", database_url):
        summary = execute_recovery(load_settings(workspace), options, PASSPHRASE)
    assert summary.report and "SUCCEEDED" in Path(summary.report).read_text()
    assert_whole_run_succeeded(database_url, summary.run_id)
    with connect(database_url) as conn:
        attempts = step_attempts(conn, summary.run_id)
    host = socket.gethostname()
    by_step = {a.step_id: a.worker for a in attempts}
    node_steps = {s.id for s in setup.plan.steps if s.phase not in CONTROL_PHASES}
    assert set(by_step) >= node_steps and len(attempts) == len(by_step), "one attempt each"
    assert {s: by_step[s] for s in node_steps} == {s: f"{queue_of[s]}@{host}" for s in node_steps}
    assert all(by_step[s.id] == f"{host}:{os.getpid()}" for s in setup.plan.steps if s.id not in node_steps)
    on_workers = comparable(restored_tree(setup.plan, tmp_path / "tree"))
    assert len(on_workers) > 100 and on_workers == in_process_tree


def test_a_worker_process_killed_mid_volume_is_replaced_and_the_run_finishes_identical(
    three_nodes: DemoSet,
    tmp_path: Path,
    database_url: str,
    recovery_folder: Path,
    in_process_tree: dict[str, str],
) -> None:
    setup, queue_of = planned_for_workers(three_nodes, recovery_folder, database_url)
    victim = next(queue_of[s.id] for s in setup.plan.steps if s.phase == "volumes")
    folders = json.dumps([TargetRoot(p.root, create=False).root + "/" for p in setup.plan.pools])
    marker = tmp_path / "stopped-pid"
    stopping = {victim: ["3", str(marker), folders]}
    command = [sys.executable, "-m", "omni_recovery.cli", "execute-plan", "--plan", str(setup.plan_path)]
    command += ["--executor", "celery", "--workspace", str(tmp_path / "ws")]
    env = dict(
        os.environ, OMNI_RECOVERY_PASSPHRASE=PASSPHRASE.decode(), OMNI_RECOVERY_DATABASE_URL=database_url
    )
    with running_workers(
        sorted(set(queue_of.values())), tmp_path / "workers", database_url, stopping
    ) as workers:
        log = tmp_path / "execute-plan.log"  # a file: a pipe nobody reads while waiting could fill up
        control = subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        try:
            stops = while_running(
                control, lambda: marker.exists() and marker.read_text(), "a volume's worker stops"
            )
            wait_until(stops, "a volume step's worker process stops", seconds=900)
            stopped = psutil.Process(int(marker.read_text()))
            wait_until(lambda: stopped.status() == psutil.STATUS_STOPPED, "the worker process stands still")
            assert stopped.ppid() == workers[victim].pid, "the pool process of the volume's worker"
            stopped.kill()  # SIGKILL, mid-volume
            control.wait(timeout=900)
        finally:
            if control.poll() is None:
                control.kill()
                control.wait()
    output = log.read_text()
    assert control.returncode == 0, output
    run_id = re.search(r"recovery run (run-\S+) finished", output)
    assert run_id, output
    assert_whole_run_succeeded(database_url, run_id[1])
    with connect(database_url) as conn:
        attempts = step_attempts(conn, run_id[1])
    killed = [a for a in attempts if a.outcome is None]  # the steps in flight: up to the parallel factor
    assert 1 <= len(killed) <= ExecuteOptions(setup.plan_path).parallel, killed
    for attempt in killed:
        assert attempt.worker == f"{victim}@{socket.gethostname()}" and queue_of[attempt.step_id] == victim
        again = [a for a in attempts if a.step_id == attempt.step_id and a.attempt > attempt.attempt]
        assert [(a.outcome, a.worker) for a in again] == [(SUCCEEDED, attempt.worker)], "retried on its queue"
    assert comparable(restored_tree(setup.plan, tmp_path / "tree")) == in_process_tree


def test_a_partial_restore_is_refused_on_the_workers_before_anything_runs(
    three_nodes: DemoSet,
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    database_url: str,
    recovery_folder: Path,
) -> None:
    setup, _ = planned_for_workers(three_nodes, recovery_folder, database_url)
    options = ExecuteOptions(setup.plan_path, applications=("billing",), executor="celery")
    with pytest.raises(RecoveryError, match="--applications runs in process: the restore workers restore"):
        execute_recovery(load_settings(workspace), options, PASSPHRASE)
    assert not (recovery_folder / "infra").exists() and not workspace.exists()


def test_a_worker_with_a_wrong_passphrase_fails_the_run_in_one_line_and_writes_nothing(
    three_nodes: DemoSet,
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    database_url: str,
    recovery_folder: Path,
) -> None:
    setup, queue_of = planned_for_workers(three_nodes, recovery_folder, database_url)
    queues = sorted(set(queue_of.values()))
    wrong = queue_of[next(s.id for s in setup.plan.steps if s.phase == "directors")]
    options = ExecuteOptions(setup.plan_path, executor="celery")
    with (
        running_workers(queues, tmp_path / "workers", database_url, secrets={wrong: b"not the passphrase"}),
        pytest.raises(RecoveryError) as refused,
    ):
        execute_recovery(load_settings(workspace), options, PASSPHRASE)
    said = r"^\S+\.iso: data/keys/data-key\.json: the recovery passphrase does not unwrap the data key"
    assert re.match(said, str(refused.value)), refused.value
    assert "\n" not in str(refused.value) and "Traceback" not in str(refused.value)
    with connect(database_url) as conn:
        run_id = conn.execute("SELECT run_id FROM omni.recovery_runs ORDER BY started_at DESC").fetchone()
        assert run_id is not None
        attempts = step_attempts(conn, run_id[0])
    assert not any(a.worker and a.worker.startswith(wrong) for a in attempts), "it ran no step"


@pytest.mark.parametrize(
    ("broker", "said"),
    [
        ("foo://user:secret@host/0", "--broker foo://…: not a broker Celery can use"),
        ("redis://:secret@host:6379/0", "--broker redis://…: the redis Python package is not installed here"),
    ],
)
def test_a_broker_that_cannot_be_used_is_refused_in_one_line_without_its_password(
    tmp_path: Path, broker: str, said: str
) -> None:
    if "redis" in broker and importlib.util.find_spec("redis") is not None:
        pytest.skip("the redis package is installed here: a redis:// broker can be used")
    command = ["worker", "--queue", "q", "--broker", broker, "--workspace", str(tmp_path / "ws")]
    result = CliRunner().invoke(main, command, env={"OMNI_RECOVERY_PASSPHRASE": "x"})
    assert result.exit_code == 1, result.output
    assert said in result.output and "secret" not in result.output and "Traceback" not in result.output
    assert not (tmp_path / "ws").exists(), "refused before the workspace is touched"
