"""Restore workers on dagster-celery: the broker, the Dagster instance every worker shares, a worker
process, and a recovery's node steps run through them.

Nothing but the recovery database's PostgreSQL is needed: by default the broker is kombu's
SQLAlchemy transport on it (`sqla+postgresql+psycopg://…`) and the task results are Celery's
database backend there (`db+…`); `--broker` takes any Celery broker URL instead (e.g. redis://).
The Dagster instance of these runs keeps its run and event storage in the same database
(dagster-postgres, in its default schema; the recovery's own tables are in schema `omni`), so
control node and workers see one run; its home is `<workspace>/dagster-celery` on the control node.

Celery is set so a worker that dies mid-task does not lose it: a task is acknowledged only once it
has ended (`task_acks_late`), given back when its worker process is lost
(`task_reject_on_worker_lost`), and a worker takes one task at a time (prefetch 1). A worker
whose main process (or machine) is lost gives nothing back: with a Redis broker its task is
handed out again once it has been unacknowledged for the visibility timeout (which must exceed
the longest node op, else a running op is handed out twice); the SQLAlchemy transport has no such
timeout: there the control node's watchdog hands it out again once its worker's processes are
gone (pipelines/worker_watchdog.py).
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from celery.exceptions import DuplicateTaskNameWarning
from dagster import DagsterInstance, execute_job
from kombu import Connection
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import URL

from omni_recovery.db.connection import connect
from omni_recovery.db.server import database_url
from omni_recovery.errors import RecoveryError
from omni_recovery.execute.context import RunContext
from omni_recovery.execute.options import DEFAULT_VISIBILITY_TIMEOUT
from omni_recovery.settings import PASSPHRASE_ENV, WORKSPACE_ENV, Settings
from omni_recovery.whole_file import write_text_whole
from pipelines.node_job import reconstructable_restore_by_node, worker_config
from pipelines.worker_watchdog import announce_worker

CELERY_SETTINGS: dict[str, Any] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
}
BROKER_TABLES_LOCK = 0x6F6D6E6962726B72  # a PostgreSQL advisory lock key of this module's own


def sqlalchemy_url(url: str, driver: str) -> str:
    """A libpq URL or conninfo string as an SQLAlchemy URL for `driver` (psycopg, psycopg2)."""
    params = {key: str(value) for key, value in conninfo_to_dict(url).items()}
    return URL.create(
        f"postgresql+{driver}",
        username=params.pop("user", None),
        password=params.pop("password", None),
        database=params.pop("dbname", None),
        query=params,
    ).render_as_string(hide_password=False)


def celery_urls(settings: Settings, broker: str | None) -> tuple[str, str]:
    """(broker, result backend): `broker` if given (checked first), else the recovery database's."""
    if broker:
        check_broker(broker)
    url = sqlalchemy_url(database_url(settings), "psycopg")
    return broker or f"sqla+{url}", f"db+{url}"


def check_broker(broker: str) -> None:
    """Refuse, in one line, a broker URL kombu has no transport for, or whose client library is
    missing here (the URL's scheme only is named: the rest may hold a password)."""
    scheme = broker.partition("://")[0]
    try:
        _ = Connection(broker).transport
    except (KeyError, ImportError) as exc:
        raise RecoveryError(f"--broker {scheme}://…: not a broker Celery can use ({exc})") from exc


def executor_config(
    settings: Settings, broker: str | None, visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT
) -> dict[str, Any]:
    """dagster-celery's executor config (the workers' app is made from the same)."""
    broker_url, backend = celery_urls(settings, broker)
    config = dict(CELERY_SETTINGS)
    if broker_url.startswith("redis"):
        # Unacknowledged tasks are looked for every 10 s (kombu's default: every 100 s).
        config["broker_transport_options"] = {
            "visibility_timeout": visibility_timeout,
            "unacked_restore_throttle": 1,
        }
    return {"broker": broker_url, "backend": backend, "config_source": config}


def prepare_broker_tables(settings: Settings, broker_url: str, queues: Iterable[str] = ()) -> None:
    """Make the SQLAlchemy transport's tables and the rows of `queues`, one process at a time:
    kombu makes both on first use with no guard between processes (a channel alone makes nothing:
    its first session does). Workers started together on a new database raced on `CREATE SEQUENCE
    queue_id_sequence` (all but one failed); a worker and the control node first using one queue at
    once both insert its row (its name is unique). The control node losing either race fails its
    publish: its run fails with no step failed and nothing in the workers' logs. Other transports
    need nothing."""
    if not broker_url.startswith("sqla+"):
        return
    with connect(database_url(settings)) as conn, Connection(broker_url) as broker:
        conn.execute("SELECT pg_advisory_lock(%s)", (BROKER_TABLES_LOCK,))
        channel = broker.default_channel
        _ = channel.session  # a process's first session makes the tables when they are missing
        for queue in queues:
            channel.queue_declare(queue=queue)  # the queue's row, when missing
        conn.execute("SELECT pg_advisory_unlock(%s)", (BROKER_TABLES_LOCK,))


def shared_instance(settings: Settings) -> DagsterInstance:
    """The Dagster instance of restore-worker runs: storage in the recovery database's PostgreSQL."""
    home = settings.workspace / "dagster-celery"
    url = sqlalchemy_url(database_url(settings), "psycopg2")
    config = f"telemetry:\n  enabled: false\nstorage:\n  postgres:\n    postgres_url: {url!r}\n"
    home.mkdir(parents=True, exist_ok=True)
    config_file = home / "dagster.yaml"
    if not config_file.exists() or config_file.read_text(encoding="utf-8") != config:
        write_text_whole(config_file, config)
    return DagsterInstance.from_config(str(home))


def run_worker(
    settings: Settings,
    queues: list[str],
    passphrase: bytes,
    *,
    broker: str | None = None,
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT,
    concurrency: int = 1,
    name: str | None = None,
) -> None:
    """Serve `queues` until stopped: each task an op of `restore_by_node` (pipelines/node_job.py)."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task

    config = executor_config(settings, broker, visibility_timeout)  # an unusable broker refused first
    prepare_broker_tables(settings, config["broker"], queues)
    announce_worker(database_url(settings), queues)  # for the control node's watchdog
    # What each task's op reads (pipelines/node_job.py), in this process and its pool's.
    os.environ[WORKSPACE_ENV] = str(settings.workspace)
    os.environ[PASSPHRASE_ENV] = passphrase.decode("utf-8")
    if settings.database_url:
        os.environ["OMNI_RECOVERY_DATABASE_URL"] = settings.database_url
    app = make_app(CeleryExecutor.for_cli(**config).app_args())
    create_task(app)
    node_name = name or f"{queues[0]}@%h"
    app.worker_main(
        ["worker", "-Q", ",".join(queues), "-n", node_name, "-c", str(concurrency), "--loglevel", "WARNING"]
    )


def run_on_workers(recovery: RunContext, tags: dict[str, str], run_config: dict[str, Any]) -> str:
    """The plan's node steps as a `restore_by_node` run on the workers (`run_config`: its loggers);
    its Dagster run id."""
    _ = recovery.certificates  # issued once in the run's folder, where the workers read them
    source = recovery.source_record
    # Where the set and inventory are as found here (given, or recorded beside the plan).
    options = dataclasses.replace(
        recovery.options, location=source["location"], inventory_path=Path(source["inventory"])
    )
    job = reconstructable_restore_by_node(str(options.plan_path), source["inventory"])
    resource = worker_config(options, recovery.tracker.run_id, recovery.run_folder.resolve())
    executor = executor_config(recovery.settings, options.broker, options.visibility_timeout)
    inventory = recovery.inventory
    queues = [n.queue for n in inventory.nodes] + [p.queue for p in inventory.storage]
    prepare_broker_tables(recovery.settings, executor["broker"], queues)
    config = {
        **run_config,
        "execution": {"config": executor},
        "resources": {"recovery_worker": {"config": resource}},
    }
    with shared_instance(recovery.settings) as instance, warnings.catch_warnings():
        # dagster-celery registers its task again for every op it sends; celery warns each time.
        warnings.simplefilter("ignore", DuplicateTaskNameWarning)
        result = execute_job(job, instance, run_config=config, tags=tags, raise_on_error=False)
        if not result.success:
            raise RecoveryError(_failure(result))
        return str(result.run_id)


def _failure(result: Any) -> str:
    """The first failed op's error: the first cause in its chain that is not Dagster's wrapping
    (the library's one-line error), else the innermost."""
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None and error.cause is not None and error.cls_name.startswith("Dagster"):
            error = error.cause
        if error is not None:
            message = error.message.strip().splitlines()[0]
            return re.sub(rf"^[\w.]*\b{re.escape(error.cls_name)}: ", "", message)
    return f"the restore workers' run {result.run_id} failed; its events are in the Dagster instance"
