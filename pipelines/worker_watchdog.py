"""A lost worker's task handed out again with the default broker (kombu's SQLAlchemy transport).

That transport keeps every message in `kombu_message`: taking one sets `visible` false, and an
acknowledgement leaves the row as it is; it has no visibility timeout, and Celery cannot tell which
workers live without a broadcast the transport lacks. So each worker tells PostgreSQL itself:

- its main process holds, for as long as it lives, a shared advisory lock per queue it serves;
- the process that runs a task holds an advisory lock of the task's id from its start to its end
  (the result is stored before the end).

PostgreSQL ends the session of a process that is gone (killed, or its machine's connection
reset), and its locks with it. The control node's watchdog (`watching`, inside execute-plan
while the workers run its ops) looks every `interval` seconds at the messages sent since it
started. A taken message whose task has no result, no later copy (Celery puts a task back as a
new message when its pool process is lost) and whose lock nobody holds, at two looks in a row,
lost its worker: it is made visible again, so the queue's next worker takes it. A worker alive but
slow holds the lock and is left alone; the step's own lock (omni_recovery/execute/joined.py) keeps
a task delivered twice from running a step twice. A message left waiting `notice_after` seconds on
a queue no worker listens to is named once, with how to start one; the run keeps waiting.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from celery.signals import task_postrun, task_prerun

from omni_recovery.db.advisory import advisory_key
from omni_recovery.db.connection import connect
from omni_recovery.errors import DatabaseError

INTERVAL = 10.0  # seconds between two looks: a lost task is handed out again within two of them
NOTICE_AFTER = 60.0  # seconds a task waits on a queue nobody listens to before that is said
READY_STATES = ("SUCCESS", "FAILURE", "REVOKED")

Echo = Callable[[str], None]


def task_key(task_id: str) -> int:
    """The advisory lock a process holds while it runs the task `task_id`."""
    return advisory_key(f"omni-recovery celery task {task_id}")


def queue_key(queue: str) -> int:
    """The advisory lock every worker serving `queue` holds (shared) while its main process lives."""
    return advisory_key(f"omni-recovery worker queue {queue}")


# The worker's side: its main process's connection, and each task-running process's own.
_LISTENING: list[psycopg.Connection[Any]] = []
_RUNNING: dict[int, psycopg.Connection[Any]] = {}


def announce_worker(database_url: str, queues: list[str]) -> None:
    """In a worker's main process, before it serves `queues`: hold their listening locks, and have
    each task's process hold its task's lock while the task runs."""
    conn = connect(database_url, autocommit=True)
    for queue in queues:
        conn.execute("SELECT pg_advisory_lock_shared(%s)", (queue_key(queue),))
    _LISTENING.append(conn)
    os.environ["OMNI_RECOVERY_TASK_LOCKS_URL"] = database_url
    task_prerun.connect(_task_started, weak=False)
    task_postrun.connect(_task_ended, weak=False)


def _task_connection() -> psycopg.Connection[Any]:
    """This process's connection for its tasks' locks (a pool process's own, not its parent's)."""
    conn = _RUNNING.get(os.getpid())
    if conn is None or conn.closed:
        conn = connect(os.environ["OMNI_RECOVERY_TASK_LOCKS_URL"], autocommit=True)
        _RUNNING[os.getpid()] = conn
    return conn


def _task_started(task_id: str, **_: Any) -> None:
    _task_connection().execute("SELECT pg_advisory_lock(%s)", (task_key(task_id),))


def _task_ended(task_id: str, **_: Any) -> None:
    _task_connection().execute("SELECT pg_advisory_unlock(%s)", (task_key(task_id),))


# The control node's side.
@dataclass(frozen=True)
class Message:
    """A row of kombu_message sent since the watchdog started."""

    row: int
    version: int
    visible: bool
    queue: str
    task_id: str

    @property
    def row_version(self) -> tuple[int, int]:
        """The row as seen: taken again (or handed out) since, it is another version."""
        return self.row, self.version


@dataclass
class Watchdog:
    """What the control node's watchdog saw at its last look; `look` is one look."""

    database_url: str
    echo: Echo
    notice_after: float = NOTICE_AFTER
    since_row: int = 0
    suspected: set[tuple[int, int]] = field(default_factory=set)
    waiting_since: dict[int, float] = field(default_factory=dict)
    noticed: set[str] = field(default_factory=set)

    def start(self) -> None:
        """Only messages sent from now on are this run's."""
        with connect(self.database_url, autocommit=True) as conn:
            try:
                row = conn.execute("SELECT coalesce(max(id), 0) FROM kombu_message").fetchone()
            except psycopg.errors.UndefinedTable:  # no worker nor run used this database yet
                row = None
        self.since_row = int(row[0]) if row else 0

    def look(self) -> list[Message]:
        """Hand out again the messages whose worker is gone, say which queues have a task waiting
        with no worker; the messages handed out again."""
        with connect(self.database_url, autocommit=True) as conn:
            messages = _messages(conn, self.since_row)
            self._notice_unheard(conn, [m for m in messages if m.visible])
            taken = [m for m in messages if not m.visible and not _copied_later(m, messages)]
            lost = [m for m in _without_result(conn, taken) if _lost(conn, m)]
            handed = [m for m in lost if m.row_version in self.suspected and _hand_out(conn, m)]
        self.suspected = {m.row_version for m in lost} - {m.row_version for m in handed}
        for message in handed:
            self.echo(
                f"  the worker running task {message.task_id} on queue {message.queue} is gone "
                "(no result, no process holding it): handed out again on its queue"
            )
        return handed

    def _notice_unheard(self, conn: psycopg.Connection[Any], waiting: list[Message]) -> None:
        now = time.monotonic()
        self.waiting_since = {m.row: self.waiting_since.get(m.row, now) for m in waiting}
        long_waiting = {m.queue for m in waiting if now - self.waiting_since[m.row] >= self.notice_after}
        for queue in sorted(long_waiting - self.noticed):
            if not _listened(conn, queue):
                self.noticed.add(queue)
                self.echo(
                    f"  no restore worker listens on queue {queue}: start one with "
                    f"`omni-recovery worker --queue {queue}` (still waiting)"
                )
        self.noticed = {q for q in self.noticed if q in {m.queue for m in waiting}}


def _messages(conn: psycopg.Connection[Any], since_row: int) -> list[Message]:
    rows = conn.execute(
        "SELECT m.id, m.version, m.visible, q.name, m.payload::json -> 'headers' ->> 'id'"
        " FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id WHERE m.id > %s ORDER BY m.id",
        (since_row,),
    ).fetchall()
    return [Message(row, version, bool(seen), queue, task or "") for row, version, seen, queue, task in rows]


def _copied_later(message: Message, messages: list[Message]) -> bool:
    """Celery put the task back itself (its pool process lost, its worker stopping)."""
    return any(m.task_id == message.task_id and m.row > message.row for m in messages)


def _without_result(conn: psycopg.Connection[Any], taken: list[Message]) -> list[Message]:
    if not taken:
        return []
    try:
        rows = conn.execute(
            "SELECT task_id FROM celery_taskmeta WHERE task_id = ANY(%s) AND status = ANY(%s)",
            ([m.task_id for m in taken], list(READY_STATES)),
        ).fetchall()
    except psycopg.errors.UndefinedTable:  # no result stored yet on this database
        return taken
    done = {task_id for (task_id,) in rows}
    return [m for m in taken if m.task_id not in done]


def _lost(conn: psycopg.Connection[Any], message: Message) -> bool:
    """Nobody holds the task's lock, and (looked at under it: a task ending stores its result
    before it lets go) it has no result."""
    key = task_key(message.task_id)
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    if not row or not row[0]:
        return False
    try:
        return bool(_without_result(conn, [message]))
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def _hand_out(conn: psycopg.Connection[Any], message: Message) -> bool:
    """Make the message visible again, unless it changed since it was seen."""
    cursor = conn.execute(
        "UPDATE kombu_message SET visible = true, version = version + 1"
        " WHERE id = %s AND version = %s AND NOT visible",
        (message.row, message.version),
    )
    return cursor.rowcount == 1


def _listened(conn: psycopg.Connection[Any], queue: str) -> bool:
    """Some worker's main process serving `queue` lives (it holds the queue's shared lock)."""
    key = queue_key(queue)
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    if row and row[0]:
        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        return False
    return True


@contextmanager
def watching(
    database_url: str, broker_url: str, echo: Echo, interval: float = INTERVAL
) -> Iterator[Watchdog | None]:
    """The watchdog looking every `interval` seconds in a thread of its own while inside; none
    for a broker other than the default one (Redis hands a lost task out again itself)."""
    if not broker_url.startswith("sqla+"):
        yield None
        return
    watchdog = Watchdog(database_url, echo)
    watchdog.start()
    stop = threading.Event()

    def run() -> None:
        failing = False
        while not stop.wait(interval):
            try:
                watchdog.look()
                failing = False
            except (psycopg.Error, DatabaseError) as exc:  # said once; the run's own errors say more
                if not failing:
                    echo(f"  the workers' watchdog cannot look at the broker's tables: {exc}")
                failing = True

    thread = threading.Thread(target=run, name="omni-worker-watchdog", daemon=True)
    thread.start()
    try:
        yield watchdog
    finally:
        stop.set()
        thread.join()
