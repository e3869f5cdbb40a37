"""The adaptation and plan assets, materialised by real Dagster against a registered real demo set.

A demo set (t1) is registered with register-isos into a workspace with a real PostgreSQL catalog;
the assets then read the set the registry names, adapt it to a same-shaped inventory, and write,
picture and store the plan. What they produce is compared with plan-generate's own path
(`planning.generate`), the plan file, its picture, its database rows and each asset's metadata.
plan-generate without --path plans the registered set too.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    ExecuteInProcessResult,
    FilesystemIOManager,
    materialize,
)

from assets.adaptation import PlanningResource
from assets.plan import ADAPTATION_ASSETS, PLAN_FILE
from omni_recovery.adapt.inventory import inventory_to_yaml, make_inventory
from omni_recovery.backupset.signing import load_signing_key
from omni_recovery.cli import main
from omni_recovery.db.connection import connect
from omni_recovery.envstate.folder import environment_from_folder
from omni_recovery.plan.generate import PLAN_RECORD_SUFFIX, generate, plan_id
from omni_recovery.settings import DATABASE_URL_ENV, Settings
from pipelines.runner import dagster_instance, register_isos
from tests.builders import same_shaped_inventory
from tests.catalog_fixtures import DemoSet, scratch_workspace
from tests.checker.tamper import copy_set, iso_file, rebuild
from tests.test_unreadable_old_ca import with_unreadable_old_ca
from transforms.plan import PHASES, plan_from_yaml

ADAPTATION_NAMES = (
    "source_environment",
    "hardware_mapping",
    "resource_scaling",
    "network_adaptation",
    "storage_redirection",
)


@dataclass
class Workspace:
    settings: Settings
    database_url: str
    inventory: Path


@pytest.fixture(scope="module")
def workspace(
    demo_set: DemoSet, catalog_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workspace]:
    """A workspace with the demo set t1 registered, and a same-shaped inventory beside it."""
    with scratch_workspace(tmp_path_factory, "plan") as root:
        settings = Settings(workspace=root / "ws", database_url=catalog_database_url)
        register_isos(str(demo_set.output), settings)
        inventory = same_shaped_inventory(demo_set.env, root)
        yield Workspace(settings, catalog_database_url, inventory)


def _planning(ws: Workspace, **config: Any) -> PlanningResource:
    return PlanningResource(
        workspace=str(ws.settings.workspace),
        inventory_path=str(config.pop("inventory", ws.inventory)),
        database_url=ws.database_url,
        **config,
    )


def _materialize(
    ws: Workspace,
    io_dir: Path,
    planning: PlanningResource,
    selection: list[str] | None = None,
    instance: DagsterInstance | None = None,
) -> ExecuteInProcessResult:
    return materialize(
        ADAPTATION_ASSETS,
        resources={"planning": planning, "io_manager": FilesystemIOManager(base_dir=str(io_dir))},
        selection=selection,
        instance=instance or DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _metadata(result: ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    """Each materialised asset's metadata, as plain values."""
    found: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        found[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    return found


def _rows(url: str, query: str, *args: object) -> list[tuple[Any, ...]]:
    with connect(url) as conn:
        return conn.execute(query, args).fetchall()


def test_adaptation_and_plan_assets_write_picture_and_store_the_plan(
    workspace: Workspace, demo_set: DemoSet, tmp_path: Path
) -> None:
    result = _materialize(workspace, tmp_path / "io", _planning(workspace))
    assert result.success
    meta = _metadata(result)
    assert set(meta) == {*ADAPTATION_NAMES, "recovery_plan"}
    for name in meta:
        assert meta[name].get("backup_set_id", "t1") == "t1", name

    # the same plan as plan-generate's own path over the same set and inventory
    expected, _ = generate(str(demo_set.output), workspace.inventory, "basic")
    pid = plan_id(expected)
    output = workspace.settings.workspace / "plans" / pid / PLAN_FILE
    plan_meta = meta["recovery_plan"]
    assert plan_meta["plan_id"] == pid and plan_meta["path"] == str(output)
    plan = plan_from_yaml(output.read_text())
    assert plan.sha256 == expected.sha256 and not plan.edited and plan.backup_set_id == "t1"
    assert plan_meta["sha256"] == plan.sha256 and plan_meta["dagster/row_count"] == len(plan.steps)
    by_phase = plan_meta["steps_by_phase"]
    assert list(by_phase) == [p for p in PHASES if p in by_phase]
    assert sum(by_phase.values()) + plan_meta["gates"] == len(plan.steps) and plan_meta["gates"] > 0
    assert plan_meta["adaptations"] == len(plan.adaptations) > 0

    # the picture beside it, well-formed, one box per step
    svg = Path(plan_meta["svg"])
    assert svg == output.with_suffix(".svg")
    tree = ET.parse(svg)
    assert tree.getroot().tag.endswith("svg")
    assert sum(1 for e in tree.iter() if e.tag.endswith("rect")) >= len(plan.steps)
    source = json.loads(output.with_name(output.name + PLAN_RECORD_SUFFIX).read_text())
    assert source["location"].rstrip("/").endswith(str(demo_set.output))
    assert source["inventory"] == str(workspace.inventory.resolve())

    # stored once with every adaptation, and audited
    stored = _rows(
        workspace.database_url,
        "SELECT backup_set_id, plan_sha256, adaptation_mode, "
        "(SELECT count(*) FROM omni.adaptations a WHERE a.plan_id = p.plan_id) "
        "FROM omni.recovery_plans p WHERE plan_id = %s",
        pid,
    )
    assert stored == [("t1", plan.sha256, "basic", len(plan.adaptations))]
    audited = _rows(
        workspace.database_url,
        "SELECT detail->>'by' FROM omni.audit_log WHERE operation = 'plan.generate' AND subject = %s",
        pid,
    )
    assert ("dagster:recovery_plan",) in audited

    # each adaptation asset accounts for its share of the plan's adaptations
    kinds: dict[str, int] = {}
    for a in plan.adaptations:
        kinds[a.kind] = kinds.get(a.kind, 0) + 1
    shares = ("hardware_mapping", "resource_scaling", "network_adaptation", "storage_redirection")
    assert sum(meta[n]["adaptations"] for n in shares) == len(plan.adaptations)
    merged: dict[str, int] = {}
    for n in shares:
        for kind, count in meta[n]["adaptations_by_kind"].items():
            merged[kind] = merged.get(kind, 0) + count
    assert merged == kinds
    assert meta["resource_scaling"]["adaptations_by_kind"].keys() <= {"scaling"}
    assert meta["hardware_mapping"]["adaptations_by_kind"].keys() <= {"node", "placement"}
    assert meta["hardware_mapping"]["dagster/row_count"] == len(plan.placements)
    assert meta["resource_scaling"]["dagster/row_count"] == len(plan.placements)
    assert meta["network_adaptation"]["dagster/row_count"] == len(plan.addresses)
    assert meta["storage_redirection"]["dagster/row_count"] == len(plan.paths)
    env = meta["source_environment"]
    assert env["vms"] == len(plan.placements) and env["directors"] >= 1
    assert env["location"] == source["location"]

    # materialised again: the same plan id, still stored once
    again = _materialize(workspace, tmp_path / "io2", _planning(workspace))
    assert again.success and _metadata(again)["recovery_plan"]["plan_id"] == pid
    count = _rows(workspace.database_url, "SELECT count(*) FROM omni.recovery_plans WHERE plan_id = %s", pid)
    assert count == [(1,)]


def test_advanced_mode_and_a_named_set(workspace: Workspace, tmp_path: Path) -> None:
    planning = _planning(workspace, backup_set_id="t1", adaptation_mode="advanced")
    result = _materialize(workspace, tmp_path / "io", planning)
    assert result.success
    meta = _metadata(result)
    assert meta["hardware_mapping"]["adaptation_mode"] == "advanced"
    assert meta["recovery_plan"]["adaptation_mode"] == "advanced"
    plan = plan_from_yaml(Path(meta["recovery_plan"]["path"]).read_text())
    assert plan.adaptation_mode == "advanced" and plan.backup_set_id == "t1"


def test_an_unregistered_set_and_a_too_small_inventory_fail_by_name(
    workspace: Workspace, tmp_path: Path
) -> None:
    missing = _materialize(
        workspace, tmp_path / "io", _planning(workspace, backup_set_id="nope"), ["source_environment"]
    )
    assert not missing.success
    assert "nope is not registered" in _failure(missing)

    small = tmp_path / "small.yaml"
    small.write_text(inventory_to_yaml(make_inventory([(f"tiny-{i}", 4, 8192, 500) for i in range(3)])))
    result = _materialize(workspace, tmp_path / "io2", _planning(workspace, inventory=small))
    assert not result.success
    assert "short by" in _failure(result)
    assert "recovery_plan" not in _metadata(result)


def test_a_plan_over_stale_adaptations_is_refused(
    workspace: Workspace, demo_set: DemoSet, tmp_path: Path
) -> None:
    io_dir = tmp_path / "io"
    instance = DagsterInstance.ephemeral()
    assert _materialize(workspace, io_dir, _planning(workspace), instance=instance).success
    # the inventory changes (other subnets), then only the plan is materialised
    nodes = environment_from_folder(demo_set.env).nodes
    other = tmp_path / "other.yaml"
    renumbered = make_inventory(
        [(f"new-{n.name}", n.cpu_cores, n.memory_mib, n.disk_gib) for n in nodes],
        root=f"file://{tmp_path}",
        subnets=("10.40.0.0/24", "10.40.8.0/22", "10.40.16.0/24"),
    )
    other.write_text(inventory_to_yaml(renumbered))
    stale = _materialize(
        workspace, io_dir, _planning(workspace, inventory=other), ["recovery_plan"], instance=instance
    )
    assert not stale.success
    assert "materialise the adaptation group again" in _failure(stale)


def _failure(result: ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures, "a step should have failed"
    return " ".join(str(e.step_failure_data.error) for e in failures)


def test_definitions_with_the_adaptation_assets_resolve(tmp_path: Path) -> None:
    defs = Definitions(
        assets=ADAPTATION_ASSETS, resources={"planning": PlanningResource(workspace=str(tmp_path))}
    )
    graph = defs.get_repository_def().asset_graph
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == {**dict.fromkeys(ADAPTATION_NAMES, "adaptation"), "recovery_plan": "plan"}
    upstream = graph.get(AssetKey("recovery_plan")).parent_keys
    assert {k.to_user_string() for k in upstream} == set(ADAPTATION_NAMES)
    for key in graph.get_all_asset_keys():
        assert defs.get_repository_def().assets_defs_by_key[key].specs_by_key[key].description, key


def test_plan_generate_of_a_registered_set_is_a_plan_recovery_run_the_ui_shows(
    workspace: Workspace, demo_set: DemoSet, tmp_path: Path
) -> None:
    """plan-generate of the folder a set was registered from runs the named job `plan_recovery`:
    every adaptation asset and `recovery_plan` are materialised by it, and the plan written is theirs."""
    output = tmp_path / "by-path.yaml"
    args = ["plan-generate", "--path", str(demo_set.output), "--inventory", str(workspace.inventory)]
    args += ["--workspace", str(workspace.settings.workspace), "--output", str(output)]
    result = CliRunner().invoke(main, args, env={DATABASE_URL_ENV: workspace.database_url})
    assert result.exit_code == 0, result.output
    instance = dagster_instance(workspace.settings)
    run = instance.get_runs(limit=1)[0]
    assert (run.job_name, run.status) == ("plan_recovery", DagsterRunStatus.SUCCESS)
    events = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
    materialised = {
        e.event_log_entry.dagster_event.asset_key for e in events if e.event_log_entry.dagster_event
    }
    assert materialised == {AssetKey(name) for name in (*ADAPTATION_NAMES, "recovery_plan")}
    plan = plan_from_yaml(output.read_text())
    assert f"recorded in the recovery database as {plan_id(plan)}" in result.output
    assert (
        output.read_bytes()
        == (workspace.settings.workspace / "plans" / plan_id(plan) / PLAN_FILE).read_bytes()
    )
    record = json.loads(output.with_name(output.name + PLAN_RECORD_SUFFIX).read_text())
    assert record["workspace"] == str(workspace.settings.workspace.resolve())


def test_plan_generate_without_path_plans_the_registered_set(
    workspace: Workspace, demo_set: DemoSet, tmp_path: Path, second_set: Path
) -> None:
    """Last in this module: it registers a second set (c2), which becomes the most recent one."""
    ws = str(workspace.settings.workspace)
    env = {DATABASE_URL_ENV: workspace.database_url}
    runner = CliRunner()
    output = tmp_path / "recovery-plan.yaml"
    args = ["plan-generate", "--inventory", str(workspace.inventory), "--workspace", ws]
    result = runner.invoke(main, [*args, "--output", str(output)], env=env)
    assert result.exit_code == 0, result.output
    assert "planning registered backup set t1 in " in result.output
    plan = plan_from_yaml(output.read_text())
    assert plan.backup_set_id == "t1"
    assert "recorded in the recovery database as " + plan_id(plan) in result.output
    record = json.loads(output.with_name(output.name + PLAN_RECORD_SUFFIX).read_text())
    assert record["location"].rstrip("/").endswith(str(demo_set.output))

    # a second set registered later becomes the default; --backup-set-id still names the first
    register_isos(str(second_set), workspace.settings)
    latest = runner.invoke(main, [*args, "--output", str(tmp_path / "c2.yaml"), "--no-store"], env=env)
    assert latest.exit_code == 0, latest.output
    assert "planning registered backup set c2 in " in latest.output
    assert plan_from_yaml((tmp_path / "c2.yaml").read_text()).backup_set_id == "c2"
    named = runner.invoke(
        main, [*args, "--output", str(tmp_path / "t1.yaml"), "--no-store", "--backup-set-id", "t1"], env=env
    )
    assert named.exit_code == 0, named.output
    assert plan_from_yaml((tmp_path / "t1.yaml").read_text()).backup_set_id == "t1"

    unknown = runner.invoke(main, [*args, "--backup-set-id", "zz", "--no-store"], env=env)
    assert unknown.exit_code == 1 and "zz is not registered" in unknown.output
    both = runner.invoke(
        main, [*args, "--path", str(second_set), "--backup-set-id", "c2", "--no-store"], env=env
    )
    assert both.exit_code == 1 and "without --path" in both.output


def test_the_plan_asset_warns_of_an_unreadable_old_ca_as_plan_generate_does(
    demo_set: DemoSet, fresh_database_url: str, tmp_path: Path
) -> None:
    """The same warning (one function makes it) in the asset's plan, its metadata and plan-generate's."""
    folder = with_unreadable_old_ca(demo_set, tmp_path / "set")
    settings = Settings(workspace=tmp_path / "ws", database_url=fresh_database_url)
    register_isos(str(folder), settings)
    ws = Workspace(settings, fresh_database_url, same_shaped_inventory(demo_set.env, tmp_path))
    result = _materialize(ws, tmp_path / "io", _planning(ws))
    assert result.success
    expected, _ = generate(str(folder), ws.inventory, "basic")
    (warning,) = [a for a in expected.adaptations if a.kind == "certificate"]
    assert warning.reason.startswith("warning: the old CA certificate is not PEM")
    meta = _metadata(result)["recovery_plan"]
    assert meta["warnings"] == [f"{warning.subject}: {warning.reason}"]
    planned = plan_from_yaml(Path(meta["path"]).read_text())
    assert warning in planned.adaptations and planned.sha256 == expected.sha256


def test_a_document_the_reader_cannot_use_fails_the_asset_naming_the_iso_and_path(
    demo_set: DemoSet, fresh_database_url: str, tmp_path: Path
) -> None:
    """A registered set whose Director state gives a VM's CPU as a word: the UI's planning fails with
    the same one-line error plan-generate gives, naming the ISO and the path."""
    folder = copy_set(demo_set.output, tmp_path / "set")
    iso, path = iso_file(folder, "director-state"), "data/directors/dir-1/state.json"
    state = b'{"vms": [{"vm_id": "v", "cpu": "two"}]}'
    rebuild(iso, load_signing_key(demo_set.key_path), replace={path: state})
    settings = Settings(workspace=tmp_path / "ws", database_url=fresh_database_url)
    register_isos(str(folder), settings)
    ws = Workspace(settings, fresh_database_url, same_shaped_inventory(demo_set.env, tmp_path))
    result = _materialize(ws, tmp_path / "io", _planning(ws))
    assert not result.success
    said = _failure(result)
    assert f"{iso.name}: {path}: malformed (ValueError: cpu is 'two', not a number)" in said, said
