"""Restore workers: a recovery through dagster-celery, each node's steps on its own worker.

A demo environment of three nodes, backed up and deeply validated; three real `omni-recovery
worker` processes, one per node of its same-shaped inventory, each serving its node's queue (the
storage pools' queues are set to the nodes' in the inventory), with the broker and result backend
on the recovery database's PostgreSQL. The recovery run records each attempt under the worker of
its step's node, and the restored tree is the in-process one's.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
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
from omni_recovery.execute.run_lock import scalar
from omni_recovery.execute.tracking import SKIPPED, SUCCEEDED
from omni_recovery.settings import Settings, load_settings
from omni_recovery.targets.driver import TargetRoot
from omni_recovery.validate import store, validate
from pipelines.celery_workers import BROKER_TABLES_LOCK, celery_urls, prepare_broker_tables
from pipelines.node_job import WorkerRecovery, worker_config
from pipelines.recovery_runner import execute_recovery
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.conftest import PostgresForTests
from tests.demo_fixtures import SMALL_SET, signed_set, write_demo
from tests.test_parallel_steps import comparable, run_steps
from tests.test_recovery import Setup, make_setup, restored_tree, wait_until, workspace  # noqa: F401
from tests.worker_processes import (
    Worker,
    assert_killed_steps_retried,
    executing_plan,
    machine_accounts,
    running_workers,
    stopped_pool_process,
    stopping_mid_volume,
)
from transforms.plan import Plan
from transforms.plan.node_groups import CONTROL_PHASES, step_queues


@pytest.fixture(scope="module")
def database_url(postgres_server: PostgresForTests) -> Iterator[str]:
    """This module's own recovery database: it also holds the broker's, the results' and the
    Dagster instance's tables of the restore workers."""
    url = postgres_server.create_database("omni_workers")
    init_database(url)
    yield url
    postgres_server.drop_database(url)


# The account one volume file of the three-node set belongs to (by name and number).
OWNER = pwd.getpwnam("daemon")


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> DemoSet:
    """A backup set of a three-node demo environment, its deep validation on record; one volume
    file of it belongs to OWNER, the others to root."""
    env = write_demo(
        tmp_path_factory, "three-nodes", DemoOptions(nodes=3, volume_scale="tiny", applications=6)
    )
    owned = next(f for f in sorted((env / "volumes").rglob("*")) if f.is_file() and not f.is_symlink())
    os.chown(owned, OWNER.pw_uid, OWNER.pw_gid)
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
    options = ExecuteOptions(setup.plan_path, executor="celery", io_priority="low")
    with running_workers(sorted(set(queue_of.values())), tmp_path / "workers", database_url) as workers:
        summary = execute_recovery(load_settings(workspace), options, PASSPHRASE)
        assert {queue: pool_io_classes(worker) for queue, worker in workers.items()} == {
            queue: {psutil.IOPRIO_CLASS_IDLE} for queue in workers
        }, "each worker's pool process restores at the run's --io-priority"
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


def pool_io_classes(worker: Worker) -> set[int]:
    """The I/O scheduling classes of `worker`'s pool processes (its main process's children)."""
    return {child.ionice().ioclass for child in psutil.Process(worker.pid).children(recursive=True)}


# Every option of a run, none at its default (test_a_worker_is_given_every_option_of_the_run).
EVERY_OPTION = ExecuteOptions(
    plan_path=Path("/plans/plan.yaml"),
    location="file:///sets/set1",
    inventory_path=Path("/plans/inventory.yaml"),
    applications=("billing", "shop"),
    parallel_factor=5,
    io_priority="low",
    mode="resource-efficient",
    signing_key=Path("/keys/backup-signing.key"),
    require_validation=False,
    reverify=True,
    allow_system_root=True,
    numeric_owner=True,
    ssh_identity=Path("/keys/id_ed25519"),
    bandwidth_limit=1_000_000,
    ssh_data_channel="sftp",
    launched_applications=("crm",),
    executor="celery",
    broker="redis://broker.example:6379/0",
    visibility_timeout=600,
)


def test_a_worker_is_given_every_option_of_the_run() -> None:
    defaults = ExecuteOptions(Path("plan.yaml"))
    at_default = [
        f.name
        for f in dataclasses.fields(ExecuteOptions)
        if getattr(EVERY_OPTION, f.name) == getattr(defaults, f.name)
    ]
    assert at_default == [], "EVERY_OPTION gives each option of ExecuteOptions a value of its own"
    config = worker_config(EVERY_OPTION, "run-1", Path("/runs/run-1"))
    assert WorkerRecovery(**config).execute_options() == EVERY_OPTION
    assert WorkerRecovery(**worker_config(defaults, "run-1", Path("/r"))).execute_options() == defaults


def non_root_owners(plan: Plan) -> dict[str, int]:
    """Each restored file (in every root of the plan) not owned by root → its owner's uid."""
    owners = {}
    for url in [n.root for n in plan.nodes] + [p.root for p in plan.pools]:
        for path in Path(TargetRoot(url, create=False).root).rglob("*"):
            uid = path.lstat().st_uid
            if uid != 0:
                owners[str(path)] = uid
    return owners


@pytest.mark.skipif(os.geteuid() != 0, reason="owners and a mount namespace need root")
def test_numeric_owner_is_what_the_workers_restore_with(
    three_nodes: DemoSet,
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    database_url: str,
    recovery_folder: Path,
) -> None:
    """The workers' machine numbers OWNER's account otherwise than the backed-up one: by name the
    file would get that number, with --numeric-owner it keeps the recorded one."""
    setup, queue_of = planned_for_workers(three_nodes, recovery_folder, database_url)
    renumbered = OWNER.pw_uid + 4242
    passwd = tmp_path / "passwd"
    accounts = Path("/etc/passwd").read_text().splitlines()
    passwd.write_text(
        "".join(
            f"{OWNER.pw_name}:x:{renumbered}:{line.split(':', 3)[3]}\n"
            if line.startswith(f"{OWNER.pw_name}:")
            else line + "\n"
            for line in accounts
        )
    )
    seen = subprocess.run(
        [*machine_accounts(passwd), "id", "-u", OWNER.pw_name], capture_output=True, text=True
    )
    assert seen.stdout.strip() == str(renumbered), f"the workers' own accounts: {seen.stderr}"
    options = ExecuteOptions(setup.plan_path, executor="celery", numeric_owner=True)
    queues = sorted(set(queue_of.values()))
    with running_workers(queues, tmp_path / "workers", database_url, wrapper=machine_accounts(passwd)):
        summary = execute_recovery(load_settings(workspace), options, PASSPHRASE)
    assert_whole_run_succeeded(database_url, summary.run_id)
    assert list(non_root_owners(setup.plan).values()) == [OWNER.pw_uid]


def test_a_worker_process_killed_mid_volume_is_replaced_and_the_run_finishes_identical(
    three_nodes: DemoSet,
    tmp_path: Path,
    database_url: str,
    recovery_folder: Path,
    in_process_tree: dict[str, str],
) -> None:
    setup, queue_of = planned_for_workers(three_nodes, recovery_folder, database_url)
    victim, marker, stopping = stopping_mid_volume(setup.plan, queue_of, tmp_path)
    queues = sorted(set(queue_of.values()))
    with (
        running_workers(queues, tmp_path / "workers", database_url, stopping) as workers,
        executing_plan(setup.plan_path, tmp_path, database_url) as control,
    ):
        stopped_pool_process(control, marker, workers[victim]).kill()  # SIGKILL, mid-volume
    run_id = assert_killed_steps_retried(control, tmp_path, database_url, setup.plan_path, queue_of, victim)
    assert_whole_run_succeeded(database_url, run_id)
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


def queue_rows(database_url: str) -> set[str]:
    with connect(database_url) as conn:
        return {str(row[0]) for row in conn.execute("SELECT name FROM public.kombu_queue")}


def test_a_queue_s_row_is_made_before_use_one_process_at_a_time(database_url: str, tmp_path: Path) -> None:
    """kombu's SQLAlchemy transport makes a queue's row on first use, guarded only within its
    process: the control node's first publish and a starting worker's first poll of one queue both
    inserted it, and the loser's IntegrityError failed its publish (seen once: the workers' run
    failed with no step failed). Each process makes its queues' rows first, under a lock of its own."""
    settings = Settings(workspace=tmp_path / "ws", database_url=database_url)
    broker = celery_urls(settings, None)[0]
    queues = [f"omni-{tmp_path.name}-{n}" for n in (1, 2)]
    prepare_broker_tables(settings, broker)
    assert not set(queues) & queue_rows(database_url), "the tables made, no queue's row"
    with connect(database_url) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (BROKER_TABLES_LOCK,))
        holder.commit()
        preparing = threading.Thread(target=prepare_broker_tables, args=(settings, broker, queues))
        preparing.start()
        waiting = (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        wait_until(lambda: scalar(holder, waiting) == 1, "prepare_broker_tables waits on the lock")
        assert not set(queues) & queue_rows(database_url), "nothing made while another process holds it"
        holder.execute("SELECT pg_advisory_unlock(%s)", (BROKER_TABLES_LOCK,))
        holder.commit()
        preparing.join(timeout=300)
    assert not preparing.is_alive() and set(queues) <= queue_rows(database_url)


@pytest.mark.parametrize(
    ("broker", "said"),
    [
        ("foo://user:secret@host/0", "--broker foo://…: not a broker Celery can use"),
    ],
)
def test_a_broker_that_cannot_be_used_is_refused_in_one_line_without_its_password(
    tmp_path: Path, broker: str, said: str
) -> None:
    command = ["worker", "--queue", "q", "--broker", broker, "--workspace", str(tmp_path / "ws")]
    result = CliRunner().invoke(main, command, env={"OMNI_RECOVERY_PASSPHRASE": "x"})
    assert result.exit_code == 1, result.output
    assert said in result.output and "secret" not in result.output and "Traceback" not in result.output
    assert not (tmp_path / "ws").exists(), "refused before the workspace is touched"
