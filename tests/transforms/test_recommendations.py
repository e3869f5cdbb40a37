"""Recommendations over rows: generated placements, one small node, and a real recovery's records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from omni_recovery.cli.practice import omni
from omni_recovery.db.connection import connect
from omni_recovery.settings import Settings
from pipelines.drill import DrillOptions, run_drill
from tests.demo_fixtures import PASSPHRASE, DemoSet, extra_set
from transforms.recommendations import (
    NodeRow,
    PlacementRow,
    PoolRow,
    StepRow,
    nearly_full_pools,
    node_commitments,
    parallelism,
    rebalance,
    slow_steps,
)

BIG = NodeRow("big-1", 64.0, 131072)


def test_an_application_squeezed_onto_one_small_node_is_moved_where_its_original_request_fits():
    small = NodeRow("small", 8.0, 8192)
    placements = [
        PlacementRow("app-a", "small", 2, 2048, 4, 4096),
        PlacementRow("app-b", "small", 3, 3072, 6, 6144),
        PlacementRow("orch-1", "big-1", 8, 16384, 8, 16384),
    ]
    found = rebalance([small, BIG], placements)
    assert [(r.subject, r.evidence["from"], r.evidence["to"]) for r in found] == [
        ("app-b", "small", "big-1"),
        ("app-a", "small", "big-1"),
    ]
    assert found[0].evidence["cpu"] == [3, 6] and found[0].evidence["memory_mib"] == [3072, 6144]


def test_no_move_without_room_for_the_whole_original_request():
    tight = NodeRow("tight", 10.0, 20000)
    placements = [
        PlacementRow("app-a", "small", 2, 2048, 4, 4096),
        PlacementRow("svc", "tight", 8, 16384, 8, 16384),
    ]
    assert rebalance([NodeRow("small", 8.0, 8192), tight], placements) == []


vm = st.builds(
    lambda node, cpu, mem, dc, dm: PlacementRow(
        f"vm-{node}-{cpu}-{mem}", f"n{node}", cpu, mem, cpu + dc, mem + dm
    ),
    st.integers(0, 3),
    st.integers(1, 16),
    st.integers(256, 16384),
    st.integers(0, 8),
    st.integers(0, 8192),
)


@given(
    st.lists(vm, max_size=25, unique_by=lambda p: p.name),
    st.lists(st.tuples(st.integers(4, 96), st.integers(4096, 262144)), min_size=4, max_size=4),
)
def test_after_every_recommended_move_no_target_holds_more_than_its_capacity(
    placements: list[PlacementRow], capacities: list[tuple[int, int]]
):
    nodes = [NodeRow(f"n{i}", float(c), m) for i, (c, m) in enumerate(capacities)]
    moves = {r.subject: r.evidence["to"] for r in rebalance(nodes, placements)}
    after = [
        PlacementRow(p.name, moves[p.name], p.old_cpu, p.old_memory_mib, p.old_cpu, p.old_memory_mib)
        if p.name in moves
        else p
        for p in placements
    ]
    for node in nodes:
        if node.name not in moves.values():
            continue
        before = [p for p in placements if p.node == node.name]
        on = [p for p in after if p.node == node.name]
        # a target takes moves only into the room it had: it ends within capacity, or no worse than it was
        cpu_ok = sum(p.cpu for p in on) <= max(node.cpu_capacity, sum(p.cpu for p in before))
        memory_ok = sum(p.memory_mib for p in on) <= max(
            node.memory_capacity_mib, sum(p.memory_mib for p in before)
        )
        assert cpu_ok and memory_ok
    assert all(moves[p.name] != p.node for p in placements if p.name in moves)


def test_nodes_pools_parallelism_and_slow_steps_are_read_from_their_numbers():
    placements = [PlacementRow("a", "big-1", 70, 1024, 70, 1024), PlacementRow("b", "idle", 1, 256, 1, 256)]
    kinds = {(r.kind, r.subject) for r in node_commitments([BIG, NodeRow("idle", 64.0, 131072)], placements)}
    assert kinds == {("node-over-committed", "big-1"), ("node-under-used", "idle")}
    (full,) = nearly_full_pools([PoolRow("fast", 100, 90), PoolRow("bulk", 100, 10)])
    assert full.subject == "fast"
    steps = [StepRow("volume/a", "volumes", 30.0, 30 << 20), StepRow("volume/b", "volumes", 5.0, 40 << 20)]
    (slow,) = slow_steps(steps)
    assert (slow.subject, slow.evidence["mib_per_s"], slow.evidence["fastest_in_phase"]) == (
        "volume/a",
        1.0,
        8.0,
    )
    (raise_it,) = parallelism(steps, 2, 20.0)
    assert raise_it.evidence["suggested"] == 4
    (lower_it,) = parallelism(steps, 16, 40.0)
    assert lower_it.evidence["suggested"] == 1


def test_optimize_lists_the_recommendations_of_a_real_recovery_with_their_evidence(
    demo_set: DemoSet, tmp_path: Path, database_url: str, tmp_path_factory: pytest.TempPathFactory
):
    location = extra_set(demo_set, tmp_path_factory, "optimized", "opt1")
    settings = Settings(tmp_path / "ws", database_url)
    assert run_drill(settings, DrillOptions(str(location), demo_set.trusted, PASSPHRASE)).passed
    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT r.run_id, (SELECT sum(extract(epoch FROM s.finished_at - s.started_at)) "
            "FROM omni.recovery_steps s WHERE s.run_id = r.run_id), "
            "extract(epoch FROM r.finished_at - r.started_at) "
            "FROM omni.recovery_runs r JOIN omni.recovery_plans USING (plan_id) WHERE backup_set_id = 'opt1'"
        ).fetchone()
    assert row is not None
    run_id, busy, wall = row

    result = CliRunner().invoke(
        omni,
        ["performance", "optimize", "--run", run_id, "--workspace", str(tmp_path / "ws")],
        env={"OMNI_RECOVERY_DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"recovery run {run_id} of set opt1: ")
    listed = [
        (line.split("]")[0].removeprefix("- ["), json.loads(following.split("evidence: ", 1)[1]))
        for line, following in zip(lines[1::2], lines[2::2], strict=True)
    ]
    assert len(listed) == int(lines[0].split(": ")[1].split()[0])
    kinds = [kind for kind, _ in listed]
    assert kinds.count("parallel-factor") <= 1  # several slow steps may each be named; one run, one factor
    shown = dict(listed)
    reached = float(busy) / float(wall)
    if reached < 1 or reached >= 1.6:  # the run's concurrency against its --parallel-factor of 2
        assert shown["parallel-factor"]["reached"] == pytest.approx(reached, abs=0.01)
        assert shown["parallel-factor"]["suggested"] == (1 if reached < 1 else 4)
    else:
        assert "parallel-factor" not in shown
