"""Dagster's SQLite run and event-log storage, keeping one SQLAlchemy engine per database file.

Dagster's own SQLite storages build a new engine for every connection, which throws away the
engine's compiled-statement cache: each event a run writes then compiles its INSERTs again and
opens the database through a fresh engine (about 10 ms an event here, a run of the recovery writes
over a hundred), and builds one more for each `has_table` question (asked before every asset
event). These subclasses keep the engine and its open connection: same files, same tables, so a
`dagster dev` using the stock classes reads the same instance. Their connections sync the
write-ahead log at checkpoints rather than at every commit (synchronous=NORMAL, which SQLite's
documentation gives as consistent in WAL mode): a run's hundred events waited for as many fsyncs.

Dagster closes a run's database after each event, and closing the last connection to a WAL
database folds the log into the database file, the file `dagster dev` watches to stream a run's
events; here a connection that wrote to a run's database folds it explicitly instead (a passive
checkpoint: a fraction of the cost of closing and opening the database again).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine


class EngineCache:
    """One engine per connection string, made on first use and pooling its connections (SQLAlchemy's
    default for a SQLite file); the least recently used beyond `size` are dropped (a long-lived
    webserver reads many runs' databases)."""

    def __init__(self, size: int = 32, **engine_args: Any) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size
        self._engine_args = engine_args

    def get(self, conn_string: str) -> Engine:
        with self._lock:
            engine = self._engines.pop(conn_string, None)
            if engine is None:
                engine = create_engine(conn_string, **self._engine_args)
                event.listen(engine, "connect", _sync_wal_at_checkpoints)
            self._engines[conn_string] = engine
            while len(self._engines) > self._size:
                self._engines.popitem(last=False)[1].dispose()
            return engine

    def clear(self) -> None:
        with self._lock:
            while self._engines:
                self._engines.popitem()[1].dispose()


def _sync_wal_at_checkpoints(dbapi_connection: Any, _record: Any) -> None:
    """synchronous=NORMAL on a write-ahead-logged database (all of Dagster's): a commit no longer
    waits for its own fsync, the log is synced at each checkpoint. SQLite's documentation: in WAL
    mode this keeps the database consistent; a power cut may lose the last events, a crash none."""
    cursor = dbapi_connection.cursor()
    try:
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _total_changes(conn: Connection) -> int:
    """Rows the SQLite connection under `conn` has changed since it was opened."""
    return int(conn.connection.dbapi_connection.total_changes)  # type: ignore[union-attr]


class CachedEngineSqliteRunStorage(SqliteRunStorage):
    """SqliteRunStorage whose connections share one engine."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(conn_string, inst_data)
        self._engines = EngineCache()

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._engines.get(self._conn_string).connect() as conn, conn.begin():
            yield conn


class CachedEngineSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage whose connections to each run's (and the index's) database share one
    engine per database."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines = EngineCache(connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        self._present: set[tuple[str, str]] = set()
        super().__init__(base_dir, inst_data)

    def _remember(self, kind: str, name: str, ask: Callable[[], bool]) -> bool:
        """What the index database's schema has, asked again until it is there: tables, columns and
        completed migrations are never taken away, and a `dagster instance migrate` may add them."""
        if (kind, name) not in self._present and ask():
            self._present.add((kind, name))
        return (kind, name) in self._present

    def has_table(self, table_name: str) -> bool:
        """Asked before every asset event; Dagster's own builds an engine for each question."""

        def ask() -> bool:
            engine = self._engines.get(self.conn_string_for_shard(INDEX_SHARD_NAME))
            with engine.connect() as conn:
                return bool(engine.dialect.has_table(conn, table_name))

        return self._remember("table", table_name, ask)

    def _has_asset_key_col_on_connection(self, conn: Connection, column_name: str) -> bool:
        """Asked (through a schema inspection) twice for every asset event."""
        ask = super()._has_asset_key_col_on_connection
        return self._remember("column", column_name, lambda: ask(conn, column_name))

    def has_secondary_index(self, name: str) -> bool:
        """Whether a data migration completed; asked for most asset events."""
        return self._remember(
            "migration",
            name,
            lambda: super(CachedEngineSqliteEventLogStorage, self).has_secondary_index(name),
        )

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engines.get(self.conn_string_for_shard(shard))
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
                engine.dispose()  # a connection opened before _initdb made the file WAL syncs each commit
            with engine.connect() as conn:
                changes = _total_changes(conn)
                with conn.begin():
                    yield conn
                if shard != INDEX_SHARD_NAME and _total_changes(conn) != changes:
                    # Folds the write-ahead log into the run's file, which `dagster dev` watches to
                    # stream the run (Dagster's own storage gets this by closing the connection).
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def wipe(self) -> None:
        self._engines.clear()  # the run files are deleted: no connection may stay open on them
        super().wipe()


class CachedEngineSqliteStorage(DagsterSqliteStorage):
    """Dagster's default SQLite instance storage (same folders under `base_dir`) with the run and
    event-log storages above. In dagster.yaml: `storage: {custom: {module: pipelines.instance_storage,
    class: CachedEngineSqliteStorage, config: {base_dir: <dagster home>}}}`."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        # Not DagsterSqliteStorage.__init__: it would open the stock storages first.
        self.base_dir = base_dir
        self._run_storage = CachedEngineSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = CachedEngineSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> CachedEngineSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


# Older versions of this project wrote this; such a file is ours to replace.
_PREVIOUS_YAML = "telemetry:\n  enabled: false\n"
_MARKER = "# Written by omni-recovery for this folder; delete this line to keep your own edits.\n"


def instance_yaml(home: Path) -> str:
    """dagster.yaml for a Dagster home: telemetry off, the storage above under `home`."""
    return (
        f"{_MARKER}telemetry:\n  enabled: false\n"
        "storage:\n  custom:\n    module: pipelines.instance_storage\n    class: CachedEngineSqliteStorage\n"
        f"    config:\n      base_dir: {json.dumps(str(home.resolve()))}\n"
    )


def ensure_instance_yaml(home: Path) -> None:
    """Write `home`/dagster.yaml unless it is there and current, or has been made the user's own."""
    config = home / "dagster.yaml"
    wanted = instance_yaml(home)
    current = config.read_text(encoding="utf-8") if config.exists() else None
    if current is None or current == _PREVIOUS_YAML or (current.startswith(_MARKER) and current != wanted):
        home.mkdir(parents=True, exist_ok=True)
        config.write_text(wanted, encoding="utf-8")
