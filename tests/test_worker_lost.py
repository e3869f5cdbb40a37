"""A whole restore worker lost mid-volume (its main process SIGKILLed, as a machine that goes
away), then started again: with a Redis broker the task it had taken is handed out again once
unacknowledged for the visibility timeout, and the run finishes as the in-process one.

The Redis server is a real one (Debian's `redis-server`), started here on a Unix socket of its
own; the set, inventory and workers are tests/test_restore_workers.py's, on a database of this
module's.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from omni_recovery.db.schema import init_database
from omni_recovery.settings import Settings
from pipelines.celery_workers import executor_config
from tests.backupset.conftest import DemoSet
from tests.conftest import PostgresForTests
from tests.test_parallel_steps import comparable
from tests.test_recovery import restored_tree, wait_until
from tests.test_restore_workers import (  # noqa: F401
    assert_whole_run_succeeded,
    in_process_tree,
    planned_for_workers,
    recovery_folder,
    three_nodes,
)
from tests.worker_processes import (
    assert_killed_steps_retried,
    executing_plan,
    running_workers,
    start_worker,
    stopped_pool_process,
    stopping_mid_volume,
)

# Longer than any node op of the three-node set takes on a loaded machine (a running op would be
# handed out twice), short enough for a test.
VISIBILITY_TIMEOUT = "90"


@pytest.fixture(scope="module")
def database_url(postgres_server: PostgresForTests) -> Iterator[str]:
    """This module's own recovery database (and the results' and Dagster instance's tables)."""
    url = postgres_server.create_database("omni_lost_worker")
    init_database(url)
    yield url
    postgres_server.drop_database(url)


@pytest.fixture(scope="module")
def redis_broker() -> Iterator[str]:
    """A redis-server of this module's on a Unix socket (a short path: sockets' are limited); its
    broker URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian's redis-server package): no Redis broker")
    folder = Path(tempfile.mkdtemp(prefix="omni-redis-"))
    sock = folder / "redis.sock"
    command = [binary, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no"]
    server = subprocess.Popen([*command, "--dir", str(folder)], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(unix_socket_path=str(sock))
        wait_until(lambda: server.poll() is None and sock.exists() and client.ping(), "redis-server answers")
        yield f"redis+socket://{sock}"
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_lost_worker_s_task_is_handed_out_again_when_it_is_back_and_the_run_finishes_identical(
    three_nodes: DemoSet,  # noqa: F811
    tmp_path: Path,
    database_url: str,
    redis_broker: str,
    recovery_folder: Path,  # noqa: F811
    in_process_tree: dict[str, str],  # noqa: F811
) -> None:
    setup, queue_of = planned_for_workers(three_nodes, recovery_folder, database_url)
    victim, marker, stopping = stopping_mid_volume(setup.plan, queue_of, tmp_path)
    broker = ("--broker", redis_broker, "--visibility-timeout", VISIBILITY_TIMEOUT)
    queues = sorted(set(queue_of.values()))
    with (
        running_workers(queues, tmp_path / "workers", database_url, stopping, options=broker) as workers,
        executing_plan(setup.plan_path, tmp_path, database_url, broker) as control,
    ):
        pool = stopped_pool_process(control, marker, workers[victim])
        workers[victim].kill()  # SIGKILL the worker's main process: nothing is given back
        workers[victim].wait()
        pool.kill()  # and its pool process, mid-volume: the whole worker is gone
        psutil.wait_procs([pool], timeout=60)
        again = tmp_path / "workers" / f"{victim}-again"
        workers[victim] = start_worker(victim, again, database_url, options=broker)
    run_id = assert_killed_steps_retried(control, tmp_path, database_url, setup.plan_path, queue_of, victim)
    assert_whole_run_succeeded(database_url, run_id)
    assert comparable(restored_tree(setup.plan, tmp_path / "tree")) == in_process_tree


@pytest.mark.parametrize(
    "broker", ["redis://:secret@host:6379/0", "rediss://host:6380/1", "redis+socket:///r.sock"]
)
def test_a_redis_broker_is_given_the_visibility_timeout_and_the_default_broker_is_not(
    tmp_path: Path, broker: str
) -> None:
    settings = Settings(workspace=tmp_path / "ws", database_url="postgresql://omni@db.example/omni")
    on_redis = executor_config(settings, broker, 42)["config_source"]
    assert on_redis["broker_transport_options"] == {"visibility_timeout": 42, "unacked_restore_throttle": 1}
    assert on_redis["task_acks_late"] and on_redis["task_reject_on_worker_lost"]
    on_postgres = executor_config(settings, None, 42)
    assert on_postgres["broker"].startswith("sqla+postgresql")
    assert "broker_transport_options" not in on_postgres["config_source"]
