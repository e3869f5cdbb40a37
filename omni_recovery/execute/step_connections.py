"""Database connections lent to the steps that run at once, one each, for their tracking.

`StepConnections(url, size)` is a psycopg_pool pool of at most `size` connections (the parallel
factor), opened with one. `lent()` gives the calling thread one of them for as long as it runs a
step; `current()` is the one this thread holds, or None outside a step. A pool never lends a
connection twice at once, so steps that overlap never share a session or a transaction.

What can go wrong: no connection within the pool's timeout (the server is gone) raises
DatabaseError; a connection that broke while lent is dropped by the pool when given back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout

from omni_recovery.db.connection import connection_string
from omni_recovery.errors import DatabaseError

Connection = psycopg.Connection[TupleRow]


class StepConnections:
    def __init__(self, database_url: str, size: int) -> None:
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            connection_string(database_url), min_size=1, max_size=max(1, size), open=True, name="steps"
        )
        self._held = threading.local()  # .conn: the connection lent to this thread

    @contextmanager
    def lent(self) -> Iterator[Connection]:
        try:
            conn = self._pool.getconn()
        except PoolTimeout as exc:
            raise DatabaseError(f"the recovery database gave no connection for a step ({exc})") from exc
        self._held.conn = conn
        try:
            yield conn
        finally:
            del self._held.conn
            self._pool.putconn(conn)

    def current(self) -> Connection | None:
        conn: Connection | None = getattr(self._held, "conn", None)
        return conn

    def close(self) -> None:
        self._pool.close()
