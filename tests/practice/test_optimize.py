"""`omni performance optimize --apply-recommendations` after a real recovery onto a site with one small
node, where the operator squeezed an application onto the small node (an edited plan)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from omni_recovery.adapt.inventory import inventory_to_yaml, make_inventory
from omni_recovery.cli.practice import omni
from omni_recovery.db.connection import connect
from omni_recovery.envstate.folder import environment_from_folder
from omni_recovery.execute.options import ExecuteOptions
from omni_recovery.plan.generate import generate, record_plan_source, write_plan_files
from omni_recovery.plan.overlay import overlay_path, read_overlay
from omni_recovery.settings import Settings
from omni_recovery.validate import store, validate
from pipelines.recovery_runner import execute_recovery
from tests.demo_fixtures import PASSPHRASE, DemoSet, extra_set
from transforms.plan import PlacementEntry


def squeeze(plan_text: str, vm: PlacementEntry, node: str, director: str) -> str:
    """The plan text with `vm` placed on `node` at half its request, as an operator would edit it."""
    block = re.search(r"\{vm_id: " + re.escape(vm.vm_id) + r",[^}]*\}", plan_text)
    assert block is not None
    edited = block.group(0)
    for field, value in (("director", director), ("node", node)):
        edited = re.sub(rf"(?<![a-z_]){field}: [^,]+,", f"{field}: {value},", edited, count=1)
    edited = re.sub(r"(?<![a-z_])cpu: \d+", f"cpu: {vm.cpu // 2}", edited, count=1)
    edited = re.sub(r"(?<![a-z_])memory_mib: \d+", f"memory_mib: {vm.memory_mib // 2}", edited, count=1)
    return plan_text.replace(block.group(0), edited)


def files_under(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def local(document: str) -> Path:
    """'file:///x/y: directors/d/state.json' → the file's path."""
    root, rel = document.split(": ", 1)
    return Path(root.removeprefix("file://")) / rel


def optimize(database_url: str, *args: str) -> list[str]:
    result = CliRunner().invoke(
        omni, ["performance", "optimize", *args], env={"OMNI_RECOVERY_DATABASE_URL": database_url}
    )
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def small_node_plan(demo: DemoSet, folder: Path) -> tuple[Path, PlacementEntry]:
    """A plan onto three Director nodes, the first small, with one application squeezed onto it."""
    directors = [n for n in environment_from_folder(demo.env).nodes if n.role == "director"]
    shapes = [(f"new-{n.name}", n.cpu_cores, n.memory_mib, n.disk_gib) for n in directors]
    shapes[0] = ("small-0", 16, 65536, shapes[0][3])
    folder.mkdir(parents=True)
    inventory = folder / "inventory.yaml"
    inventory.write_text(inventory_to_yaml(make_inventory(shapes, root=(folder / "site").as_uri())))
    plan, _ = generate(str(demo.output), inventory, "basic")
    small = next(n for n in plan.nodes if n.name == "small-0")
    on_small = [p for p in plan.placements if p.node == "small-0"]
    free_cpu = (small.cpu_cores - small.reserved_cpu) * plan.policy.cpu_overcommit - sum(
        p.cpu for p in on_small
    )
    free_memory = small.memory_mib - small.reserved_memory_mib - sum(p.memory_mib for p in on_small)
    vm = next(
        p
        for p in plan.placements
        if p.component.startswith("application:")
        and p.node != "small-0"
        and p.cpu // 2 <= free_cpu
        and p.memory_mib // 2 <= free_memory
        and (p.cpu > free_cpu or p.memory_mib > free_memory)  # squeezed: the whole request would not fit
    )
    plan_path = folder / "recovery-plan.yaml"
    write_plan_files(plan, plan_path)
    plan_path.write_text(squeeze(plan_path.read_text(), vm, "small-0", str(small.director)))
    record_plan_source(plan_path, str(demo.output), inventory)
    return plan_path, vm


def test_optimize_rebalances_the_squeezed_application_changing_exactly_the_documents_it_names(
    demo_set: DemoSet,
    tmp_path: Path,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
):
    location = extra_set(demo_set, tmp_path_factory, "squeezed", "opt2")
    with connect(database_url) as conn:
        store(conn, validate(str(location), demo_set.trusted, PASSPHRASE, deep=True))
    demo = DemoSet(demo_set.env, location, demo_set.summary, demo_set.key_path, demo_set.trusted)
    plan_path, vm = small_node_plan(demo, tmp_path / "site-plan")
    ws = tmp_path / "ws"
    settings = Settings(ws, database_url)
    summary = execute_recovery(settings, ExecuteOptions(plan_path), PASSPHRASE)
    assert summary.report is not None
    reported = json.loads(Path(summary.report).with_suffix(".json").read_text())["recommendations"]
    assert [r["subject"] for r in reported if r["kind"] == "rebalance"] == [vm.name], "the report lists it"
    assert f"Recommendations ({len(reported)})" in Path(summary.report).read_text()
    site = tmp_path / "site-plan" / "site"
    before = files_under(site)

    lines = optimize(database_url, "--run", summary.run_id, "--apply-recommendations")

    moves = [line for line in lines if line.startswith("- [rebalance] ")]
    assert moves == [line for line in moves if f"move {vm.name} from small-0 to " in line] and len(moves) == 1
    evidence = json.loads(lines[lines.index(moves[0]) + 1].split("evidence: ", 1)[1])
    assert evidence["cpu"] == [vm.cpu // 2, vm.cpu] and evidence["memory_mib"] == [
        vm.memory_mib // 2,
        vm.memory_mib,
    ]
    (applied,) = [line for line in lines if line.startswith("applied [rebalance] ")]
    named = {local(d) for d in evidence["documents"]}
    assert all(str(local(d)) in applied or d in applied for d in evidence["documents"])

    after = files_under(site)
    changed = {site / rel for rel in set(before) | set(after) if before.get(rel) != after.get(rel)}
    assert changed == named, "exactly the documents the recommendation names"
    leaving, arriving = (json.loads(local(d).read_text()) for d in evidence["documents"])
    assert vm.name not in {v["name"] for v in leaving["vms"]}
    (moved,) = [v for v in arriving["vms"] if v["name"] == vm.name]
    assert (moved["cpu"], moved["memory_mib"]) == (vm.cpu, vm.memory_mib)

    with connect(database_url) as conn:
        recorded = conn.execute(
            "SELECT a.subject, a.new_value FROM omni.adaptations a JOIN omni.recovery_runs r USING (plan_id) "
            "WHERE r.run_id = %s AND a.kind = 'rebalance'",
            (summary.run_id,),
        ).fetchall()
        audited = conn.execute(
            "SELECT count(*) FROM omni.audit_log WHERE operation = 'optimize.apply' AND subject = %s",
            (vm.name,),
        ).fetchone()
    assert [(s, v["cpu"], v["memory_mib"]) for s, v in recorded] == [(vm.name, vm.cpu, vm.memory_mib)]
    assert audited is not None and audited[0] >= 1

    # The recommendation for the next recovery, when the run's concurrency gave one, goes into the overlay.
    listed = optimize(
        database_url, "--run", summary.run_id, "--workspace", str(ws), "--apply-recommendations"
    )
    suggested = [
        json.loads(listed[i + 1].split("evidence: ", 1)[1])["suggested"]
        for i, line in enumerate(listed)
        if line.startswith("- [parallel-factor] ")
    ]
    assert read_overlay(ws).get("parallel_factor") == (suggested[0] if suggested else None)
    assert overlay_path(ws).is_file() == bool(suggested)

    again = optimize(database_url, "--run", summary.run_id, "--apply-recommendations")
    assert not [line for line in again if "[rebalance]" in line], "an applied move is not recommended again"
    assert files_under(site) == after
