"""Every definition loads: assets, jobs, sensor and resources resolve, each asset described and grouped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import (
    AddDynamicPartitionsRequest,
    AssetKey,
    DagsterInstance,
    SensorResult,
    SkipReason,
    build_sensor_context,
)

from assets.ingest import INGEST_TABLES
from omni_recovery.settings import Settings
from pipelines.definitions import build_definitions, defs
from pipelines.resources import BackupSetRegistry
from pipelines.sensors import RANGE_END_TAG, RANGE_START_TAG, watched_iso_folder
from pipelines.workspace_resources import build_resources
from tests.catalog_fixtures import DemoSet


def test_every_definition_resolves() -> None:
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    keys = graph.get_all_asset_keys()
    groups = {graph.get(k).group_name for k in keys}
    assert {"ingest", "catalog", "validation", "adaptation", "plan", "restore"} <= groups
    assert graph.get(AssetKey("deep_validation")).group_name == "validation"
    for name in ("isos", "files", "components", "dependencies", "hardware", "backup_sets", "configurations"):
        assert AssetKey(name) in keys
        assert graph.get(AssetKey(name)).group_name == "catalog"
    for name in INGEST_TABLES:
        node = graph.get(AssetKey(name))
        assert node.group_name == "ingest" and node.partitions_def is not None
    for key in keys:
        assert repo.assets_defs_by_key[key].specs_by_key[key].description, key
    for job in ("ingest_isos", "build_catalog", "validate_set", "plan_recovery", "restore"):
        assert defs.resolve_job_def(job).name == job
    assert defs.resolve_sensor_def("watched_iso_folder").name == "watched_iso_folder"


def test_every_resource_is_required_by_an_asset_a_check_or_the_sensor() -> None:
    repo = defs.get_repository_def()
    required: set[str] = set()
    for assets in repo.assets_defs_by_key.values():
        required |= assets.required_resource_keys
    for check in repo.asset_checks_defs_by_key.values():
        required |= check.required_resource_keys
    for sensor in repo.sensor_defs:
        required |= sensor.required_resource_keys
    registered = set(build_resources(Settings(workspace=Path("/nonexistent/ws"))))
    assert registered - required == set()


def test_workspace_yaml_loads_the_module() -> None:
    text = (Path(__file__).parents[2] / "workspace.yaml").read_text()
    assert "pipelines.definitions" in text
    assert build_definitions(Settings(workspace=Path("/nonexistent/ws"))).resolve_job_def("build_catalog")


def test_sensor_adds_new_isos_and_requests_one_run(demo_set: DemoSet, tmp_path: Path) -> None:
    instance = DagsterInstance.ephemeral()
    registry = BackupSetRegistry(workspace=str(tmp_path), watch_url=str(demo_set.output))
    result = watched_iso_folder(build_sensor_context(instance=instance, resources={"iso_registry": registry}))
    assert isinstance(result, SensorResult)
    assert result.dynamic_partitions_requests is not None and result.run_requests is not None
    request = result.dynamic_partitions_requests[0]
    assert isinstance(request, AddDynamicPartitionsRequest)
    keys = request.partition_keys
    assert sorted(keys) == sorted(demo_set.summary.isos)
    (run,) = result.run_requests
    assert (run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]) == (keys[0], keys[-1])
    assert set(registry.entries()) == set(keys)

    instance.add_dynamic_partitions("isos", list(keys))
    again = watched_iso_folder(build_sensor_context(instance=instance, resources={"iso_registry": registry}))
    assert isinstance(again, SkipReason) and "no new ISO" in str(again.skip_message)


def test_sensor_skips_a_folder_with_a_misnamed_iso(tmp_path: Path) -> None:
    (tmp_path / "holiday.jpg").write_bytes(b"\xff\xd8")  # not an ISO: not part of any set
    registry = BackupSetRegistry(workspace=str(tmp_path / "ws"), watch_url=str(tmp_path))
    context = build_sensor_context(instance=DagsterInstance.ephemeral(), resources={"iso_registry": registry})
    result = watched_iso_folder(context)
    assert isinstance(result, SkipReason) and "holds no ISO files" in str(result.skip_message)
    (tmp_path / "holiday.iso").write_bytes(b"\xff\xd8")
    result = watched_iso_folder(context)
    assert isinstance(result, SkipReason) and "holiday.iso" in str(result.skip_message)
    assert registry.entries() == {}


def ancestors(graph: Any, key: AssetKey) -> set[AssetKey]:
    """Every asset `key` depends on, directly or not."""
    found: set[AssetKey] = set()
    todo = [key]
    while todo:
        for parent in graph.get(todo.pop()).parent_keys:
            if parent not in found:
                found.add(parent)
                todo.append(parent)
    return found


def test_every_restore_asset_descends_from_the_catalog_the_validation_and_the_plan() -> None:
    """The lineage is one graph: catalog → validation → adaptation → plan → each restore asset."""
    graph = defs.get_repository_def().asset_graph
    restore = [k for k in graph.get_all_asset_keys() if graph.get(k).group_name == "restore"]
    assert len(restore) > 5
    wanted = {AssetKey("isos"), AssetKey("deep_validation"), AssetKey("network_adaptation")}
    for key in restore:
        assert wanted | {AssetKey("recovery_plan")} <= ancestors(graph, key), key
