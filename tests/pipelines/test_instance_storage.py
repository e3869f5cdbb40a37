"""The workspace's Dagster instance: SQLite storages that keep their engines, same files as Dagster's own."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest
from dagster import DagsterInstance, Output, asset, materialize
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from sqlalchemy.pool import QueuePool

from pipelines.instance_storage import (
    CachedEngineSqliteEventLogStorage,
    CachedEngineSqliteRunStorage,
    CachedEngineSqliteStorage,
    EngineCache,
    ensure_instance_yaml,
    instance_yaml,
)


@asset
def counted() -> Output[int]:
    return Output(42, metadata={"answer": 42})


def _stock_instance(home: Path) -> DagsterInstance:
    """Dagster's default SQLite instance on the same folder (no dagster.yaml of ours)."""
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    return DagsterInstance.from_config(str(home))


def _stock_event_log(home: Path) -> SqliteEventLogStorage:
    """The event log storage of Dagster's default instance on `home`: Dagster's own class, not ours."""
    storage = _stock_instance(home).event_log_storage
    assert type(storage) is SqliteEventLogStorage
    return storage


def test_the_workspace_instance_uses_the_cached_engine_storages(tmp_path: Path) -> None:
    ensure_instance_yaml(tmp_path)
    instance = DagsterInstance.from_config(str(tmp_path))
    storage_data = instance.get_ref().storage_data
    assert storage_data is not None and storage_data.class_name == CachedEngineSqliteStorage.__name__
    assert isinstance(instance.run_storage, CachedEngineSqliteRunStorage)
    assert isinstance(instance.event_log_storage, CachedEngineSqliteEventLogStorage)


def test_runs_written_through_it_read_back_with_dagsters_own_storage(tmp_path: Path) -> None:
    ensure_instance_yaml(tmp_path)
    ours = DagsterInstance.from_config(str(tmp_path))
    result = materialize([counted], instance=ours)
    assert result.success
    events = ours.all_logs(result.run_id)
    assert len(events) > 5

    stock = _stock_instance(tmp_path)
    assert type(stock.event_log_storage).__name__ == "SqliteEventLogStorage"
    assert stock.get_run_by_id(result.run_id) is not None
    seen = [(e.timestamp, e.message) for e in stock.all_logs(result.run_id)]
    assert seen == [(e.timestamp, e.message) for e in events]
    latest = stock.get_latest_materialization_event(counted.key)
    assert latest is not None and latest.run_id == result.run_id
    materialization = latest.asset_materialization
    assert materialization is not None and materialization.metadata["answer"].value == 42


def _one_run(home: Path) -> tuple[str, CachedEngineSqliteEventLogStorage, CachedEngineSqliteRunStorage]:
    """A run materialised in a workspace instance at `home`: its id and the instance's storages."""
    ensure_instance_yaml(home)
    instance = DagsterInstance.from_config(str(home))
    run_id = materialize([counted], instance=instance).run_id
    events, runs = instance.event_log_storage, instance.run_storage
    assert isinstance(events, CachedEngineSqliteEventLogStorage)
    assert isinstance(runs, CachedEngineSqliteRunStorage)
    return run_id, events, runs


def test_one_engine_per_database_is_kept_across_connections(tmp_path: Path) -> None:
    run_id, events, runs = _one_run(tmp_path)
    for connect in (lambda: events.run_connection(run_id), events.index_connection, runs.connect):
        with connect() as first:
            engine = first.engine
        with connect() as second:
            assert second is not first and second.engine is engine


def test_has_table_answers_from_the_index_database_through_its_kept_engine(tmp_path: Path) -> None:
    _run_id, events, _runs = _one_run(tmp_path)
    assert events.has_table("asset_keys") and events.has_table("asset_keys")
    assert not events.has_table("no_such_table")
    with events.index_connection() as conn:
        conn.exec_driver_sql("CREATE TABLE made_later (id INTEGER)")
    assert events.has_table("made_later"), "a table missing once is looked for again"
    assert _stock_event_log(tmp_path).has_table("made_later")


def test_asset_key_columns_and_finished_migrations_are_remembered_once_there(tmp_path: Path) -> None:
    _run_id, events, _runs = _one_run(tmp_path)
    stock = _stock_event_log(tmp_path)
    assert events.has_asset_key_index_cols() and stock.has_asset_key_index_cols()
    assert not events.has_asset_key_col("added_later")
    with events.index_connection() as conn:
        conn.exec_driver_sql("ALTER TABLE asset_keys ADD COLUMN added_later TEXT")
    assert events.has_asset_key_col("added_later"), "a column missing once is looked for again"
    assert not events.has_secondary_index("finished_later")
    stock.enable_secondary_index("finished_later")
    assert events.has_secondary_index("finished_later") and events.has_secondary_index("finished_later")


def test_engine_cache_keeps_the_most_recently_used_engines(tmp_path: Path) -> None:
    cache = EngineCache(size=2)
    one, two, three = (f"sqlite:///{tmp_path / name}.db" for name in ("one", "two", "three"))
    first = cache.get(one)
    assert cache.get(one) is first
    second = cache.get(two)
    cache.get(one)  # the first is now the most recent
    cache.get(three)  # so the second is dropped
    assert cache.get(one) is first
    assert cache.get(two) is not second


@pytest.mark.parametrize(
    ("existing", "rewritten"),
    [
        (None, True),
        ("telemetry:\n  enabled: false\n", True),  # what earlier versions wrote
        ("MOVED", True),  # ours, written for the folder before it moved
        ("telemetry:\n  enabled: true\n", False),  # the user's own
    ],
)
def test_instance_yaml_is_written_unless_it_is_the_users_own(
    tmp_path: Path, existing: str | None, rewritten: bool
) -> None:
    config = tmp_path / "dagster.yaml"
    if existing == "MOVED":
        existing = instance_yaml(tmp_path / "elsewhere")
    if existing is not None:
        config.write_text(existing, encoding="utf-8")
    ensure_instance_yaml(tmp_path)
    assert config.read_text(encoding="utf-8") == (instance_yaml(tmp_path) if rewritten else existing)
    assert str(tmp_path.resolve()) in instance_yaml(tmp_path)


def test_a_watcher_of_a_run_sees_each_event_while_the_writer_keeps_its_connection(tmp_path: Path) -> None:
    """What `dagster dev` does to stream a run: watch the run's database file for changes."""
    run_id, events, _runs = _one_run(tmp_path)
    writer = DagsterInstance.from_config(str(tmp_path))
    run = writer.get_run_by_id(run_id)
    assert run is not None
    seen: queue.Queue[str] = queue.Queue()
    events.watch(run_id, events.get_records_for_run(run_id).cursor, lambda e, _cursor: seen.put(e.message))
    try:
        for n in range(3):
            writer.report_engine_event(f"event {n}", run)
            assert seen.get(timeout=120) == f"event {n}"  # a loaded machine watches slowly
    finally:
        events.end_watch(run_id, lambda e, _cursor: None)
        events.dispose()
    writer_events = writer.event_log_storage
    assert isinstance(writer_events, CachedEngineSqliteEventLogStorage)
    with writer_events.run_connection(run_id) as shard:
        assert isinstance(shard.engine.pool, QueuePool), "the writer's connection stays open"


def test_wipe_closes_the_connections_to_the_files_it_deletes(tmp_path: Path) -> None:
    run_id, events, _runs = _one_run(tmp_path)
    shard_file = Path(events.path_for_shard(run_id))
    assert shard_file.with_suffix(".db-wal").exists(), "the run's connection is open"
    events.wipe()
    assert not shard_file.exists() and not shard_file.with_suffix(".db-wal").exists()
    assert events.get_records_for_run(run_id).records == []
