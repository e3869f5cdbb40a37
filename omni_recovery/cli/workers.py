"""`worker`, and execute-plan's `--executor`/`--broker`: restore workers on dagster-celery
(pipelines/celery_workers.py); options parsed here, the work done by the library."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from omni_recovery.cli.options import handle_errors, passphrase_option, read_passphrase, workspace_option

F = TypeVar("F", bound=Callable[..., object])

BROKER_HELP = (
    "Celery broker URL of the restore workers (e.g. redis://host:6379/0) [default: the recovery "
    "database's PostgreSQL, through kombu's SQLAlchemy transport]."
)

VISIBILITY_TIMEOUT_HELP = (
    "Redis brokers: seconds a step's task may stay unacknowledged before it is handed out again, "
    "so a lost worker's step runs on the queue's next worker; longer than the longest node op "
    "(else a running op is handed out twice). Give the control node and its workers the same."
)


def visibility_timeout_option(func: F) -> F:
    from omni_recovery.execute.options import DEFAULT_VISIBILITY_TIMEOUT

    return click.option(
        "--visibility-timeout",
        default=DEFAULT_VISIBILITY_TIMEOUT,
        show_default=True,
        type=click.IntRange(1),
        help=VISIBILITY_TIMEOUT_HELP,
    )(func)


def executor_options(func: F) -> F:
    func = visibility_timeout_option(func)
    func = click.option("--broker", default=None, help=BROKER_HELP)(func)
    return click.option(
        "--executor",
        type=click.Choice(["in-process", "celery"]),
        default="in-process",
        show_default=True,
        help="celery: each node's steps run on the restore worker serving the node's queue "
        "(inventory worker_queue, default omni-<node>; start them with `omni-recovery worker`); "
        "verification, report and post-recovery backup run here.",
    )(func)


@click.command("worker")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    required=True,
    help="Queue to serve (a node's or storage pool's worker_queue; default omni-<name>). Repeatable.",
)
@click.option("--broker", default=None, help=BROKER_HELP)
@visibility_timeout_option
@click.option(
    "--concurrency", default=1, show_default=True, type=click.IntRange(1, 64), help="Tasks run at once."
)
@click.option(
    "--name", default=None, help="Worker name recorded with each step it runs [default: QUEUE@host]."
)
@passphrase_option
@workspace_option
def worker(
    queues: tuple[str, ...],
    broker: str | None,
    visibility_timeout: int,
    concurrency: int,
    name: str | None,
    passphrase_file: Path | None,
    workspace: Path | None,
) -> None:
    """Run a restore worker: it serves the queues given until stopped (Ctrl-C, SIGTERM), running the
    steps `execute-plan --executor celery` routes to them, each recorded under the worker's name.

    It needs the recovery database (OMNI_RECOVERY_DATABASE_URL: the control node's), the plan and
    inventory at the control node's paths, the set at its location, and its own passphrase.

    \b
    Example:
      omni-recovery worker --queue omni-node1 --passphrase-file ./passphrase
    """
    handle_errors(_worker)(
        list(queues), broker, visibility_timeout, concurrency, name, passphrase_file, workspace
    )


def _worker(
    queues: list[str],
    broker: str | None,
    visibility_timeout: int,
    concurrency: int,
    name: str | None,
    passphrase_file: Path | None,
    workspace: Path | None,
) -> None:
    from omni_recovery.settings import load_settings
    from pipelines.celery_workers import run_worker

    passphrase = read_passphrase(passphrase_file)
    assert passphrase is not None
    settings = load_settings(workspace)
    run_worker(
        settings,
        queues,
        passphrase,
        broker=broker,
        visibility_timeout=visibility_timeout,
        concurrency=concurrency,
        name=name,
    )
