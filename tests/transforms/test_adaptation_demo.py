"""The default demo environment adapted onto three inventories, and refused by one too small."""

from __future__ import annotations

import xml.dom.minidom
from pathlib import Path

import pytest

from omni_recovery.adapt.inventory import make_inventory
from omni_recovery.errors import EnvironmentStateError
from omni_recovery.urls import is_under, overlapping
from tests.builders import fewer_larger, more_smaller, same_shaped
from tests.transforms.test_adaptation_properties import check_plan
from transforms.adapt.hardware import map_nodes, place_environment
from transforms.adapt.network import adapt_network
from transforms.adapt.storage_paths import redirect_storage, safe_join
from transforms.adapt.vocabulary import AdaptationError, AdaptationPolicy
from transforms.documents import Environment, environment_from_files
from transforms.plan import PHASES, Plan, generate_plan
from transforms.plan_render import plan_to_dot, plan_to_svg


def kinds(plan: Plan, kind: str) -> list[str]:
    return [f"{a.subject}: {a.old} -> {a.new}" for a in plan.adaptations if a.kind == kind]


def test_the_demo_model_is_complete(demo: Environment) -> None:
    assert (len(demo.nodes), len(demo.directors), len(demo.vms)) == (5, 3, 22)
    assert len(demo.orchestrators) == 3 and len(demo.services) == 7 and len(demo.applications) == 12
    assert len(demo.volumes) == 24 and {s.name for s in demo.network.subnets} == {
        "management",
        "services",
        "storage",
    }
    assert all(vm.owner.split(":")[0] in ("orchestrator", "service", "application") for vm in demo.vms)
    assert demo.nodes[0].nics[0].subnet == "management"


def test_the_model_reads_the_same_from_file_texts(demo: Environment, demo_root: Path) -> None:
    texts = {
        str(p.relative_to(demo_root)): p.read_text(encoding="utf-8")
        for p in demo_root.rglob("*")
        if p.is_file() and p.suffix in (".yaml", ".json") and "/files/" not in str(p)
    }
    assert environment_from_files(texts, demo.components, demo.dependencies) == demo


def test_malformed_files_are_refused_naming_the_problem(demo: Environment, demo_root: Path) -> None:
    texts = {"environment.yaml": "name: x\n", "directors/d/config.yaml": "reservations: {cpu_cores: lots}\n"}
    texts["directors/d/state.json"] = "{}"
    texts["network/subnets.yaml"] = "subnets: {}\n"
    with pytest.raises(EnvironmentStateError, match=r"directors/d/config\.yaml: malformed \(ValueError"):
        environment_from_files(texts, (), ())
    with pytest.raises(EnvironmentStateError, match=r"network/subnets\.yaml: missing"):
        environment_from_files({"environment.yaml": "name: x\n"}, (), ())


@pytest.mark.parametrize("mode", ["basic", "advanced"])
def test_same_shaped_inventory(demo: Environment, mode: str) -> None:
    inventory = same_shaped(demo)
    plan = generate_plan(demo, inventory, mode, "demo-set")
    check_plan(demo, inventory, plan)
    assert not kinds(plan, "scaling")  # the same hardware needs no scaling either way
    if mode == "basic":
        assert not kinds(plan, "placement")  # the original shape is kept
    # addresses keep their host offset in the new subnets
    assert "10.0.8.25 -> 10.20.8.25" in "\n".join(kinds(plan, "address"))
    assert any(a.kind == "mac" and "52:54:00" in a.new for a in plan.adaptations)
    assert plan.steps[0].phase == "directors" and plan.steps[-1].phase == "post-recovery-backup"
    assert {s.phase for s in plan.steps} == set(PHASES)


@pytest.mark.parametrize("mode", ["basic", "advanced"])
def test_fewer_larger_nodes(demo: Environment, mode: str) -> None:
    inventory = fewer_larger()
    plan = generate_plan(demo, inventory, mode, "demo-set")
    check_plan(demo, inventory, plan)
    retired = [a for a in plan.adaptations if a.kind == "node" and a.new == "retired"]
    assert {a.subject for a in retired} == {"node demo-node-04 (compute)", "node demo-node-05 (storage)"}
    if mode == "basic":
        assert not kinds(plan, "scaling") and not kinds(plan, "placement")
    else:  # advanced grows the applications into the larger nodes, within 2x
        assert kinds(plan, "scaling")
        assert all(p.cpu <= 2 * p.old_cpu for p in plan.placements)
        # Orchestrators spread: one per Director
        assert len({p.director for p in plan.placements if p.component.startswith("orchestrator:")}) == 3


@pytest.mark.parametrize("mode", ["basic", "advanced"])
def test_more_smaller_nodes(demo: Environment, mode: str) -> None:
    inventory = more_smaller()
    plan = generate_plan(demo, inventory, mode, "demo-set")
    check_plan(demo, inventory, plan)
    scaled = kinds(plan, "scaling")
    assert scaled  # the smaller Directors hold the VMs only scaled down
    critical = {f"application:{a.name}" for a in demo.applications if a.priority == "critical"}
    assert all(p.cpu == p.old_cpu for p in plan.placements if p.component in critical)  # kept whole
    spare = [a for a in plan.adaptations if a.kind == "node" and a.new.endswith("spare")]
    assert len(spare) == 8 - 5
    assert len({n.name for n in plan.nodes if n.director}) == 3


def test_an_inventory_too_small_says_what_does_not_fit_and_by_how_much(demo: Environment) -> None:
    inventory = make_inventory([(f"tiny-{i}", 8, 32768, 2000) for i in range(3)])
    with pytest.raises(AdaptationError) as caught:
        generate_plan(demo, inventory, "basic", "demo-set")
    message = str(caught.value)
    assert "its 3 Directors and 22 VMs need 61 cores" in message
    assert "even with every application scaled down to ×0.5" in message
    assert "have 24 cores (short by 37) and 98304 MiB (short by 157440 MiB)" in message


def test_too_few_nodes_for_the_directors(demo: Environment) -> None:
    with pytest.raises(
        AdaptationError, match=r"3 Directors need 3 nodes .* the inventory has 2 \(short by 1\)"
    ):
        generate_plan(demo, make_inventory([("a", 128, 1 << 21, 9000), ("b", 128, 1 << 21, 9000)]))


def test_too_little_vm_disk(demo: Environment) -> None:
    with pytest.raises(
        AdaptationError, match=r"need 2700 GiB of VM disk; .* have 1500 GiB \(short by 1200 GiB\)"
    ):
        generate_plan(demo, make_inventory([(f"n{i}", 64, 1 << 20, 500) for i in range(3)]))


def test_a_subnet_too_small(demo: Environment) -> None:
    inventory = make_inventory(
        [(f"n{i}", 64, 1 << 20, 9000) for i in range(3)],
        subnets=("10.20.0.0/24", "10.20.8.0/28", "10.20.16.0/24"),
    )
    with pytest.raises(
        AdaptationError, match=r"subnet services needs 23 addresses; .* has 14 usable \(short by 9\)"
    ):
        generate_plan(demo, inventory)


def test_storage_too_small_or_of_a_slower_class(demo: Environment) -> None:
    nodes = [(f"n{i}", 64, 1 << 20, 9000) for i in range(3)]
    with pytest.raises(
        AdaptationError, match=r"class ssd or faster need 120 GiB; .* has 100 GiB \(short by 20 GiB\)"
    ):
        generate_plan(demo, make_inventory(nodes, storage=[("fast", "ssd", 100), ("bulk", "hdd", 4000)]))
    with pytest.raises(AdaptationError, match=r"add a storage pool of class ssd or faster"):
        generate_plan(demo, make_inventory(nodes, storage=[("bulk", "hdd", 4000)]))
    # hdd volumes may go to a faster class; it is recorded
    plan = generate_plan(demo, make_inventory(nodes, storage=[("fast", "nvme", 4000)]))
    assert any(a.kind == "storage-class" and a.old == "hdd" and a.new == "nvme" for a in plan.adaptations)


def test_storage_paths_stay_inside_their_roots() -> None:
    assert safe_join("s3://bucket/pool", "volumes", "app", "data") == "s3://bucket/pool/volumes/app/data"
    assert is_under("file:///srv/x", "file:///srv/x/a/b")
    assert not is_under("file:///srv/x", "file:///srv/x/../y")
    assert not is_under("file:///srv/x", "file:///srv/xy/a")
    assert not is_under("file:///srv/x", "s3:///srv/x/a")
    assert not is_under("file:///srv/x", "file:///srv/x")
    for bad in ("..", ".", "", "a/b", "a\\b"):
        with pytest.raises(AdaptationError, match="cannot be used in a storage path"):
            safe_join("file:///srv/x", "volumes", bad)


def test_overlapping_urls_are_found_after_normalisation() -> None:
    urls = ["file:///srv/x", "file:///srv/xy", "file:///srv/x/a/../b", "s3:///srv/x/c", "/srv/x/y"]
    assert overlapping([(url, url) for url in urls]) == [
        ("file:///srv/x/a/../b", "file:///srv/x", False),  # inside it, once normalised
        ("/srv/x/y", "file:///srv/x", False),  # a plain path is a local one
    ]
    assert overlapping([("/srv/x", 1), ("local:///srv/x/", 2), ("/srv/x", 3)]) == [(2, 1, True), (3, 2, True)]
    assert is_under("file:///srv/x", "/srv/x/a")


def test_advanced_storage_spreads_over_pools_basic_fills_in_order(demo: Environment) -> None:
    inventory = make_inventory(
        [("n", 1, 1, 1)],
        storage=[("a", "ssd", 1000), ("b", "ssd", 1000), ("c", "hdd", 1000), ("d", "hdd", 1000)],
    )
    basic = {pool: used for pool, used, _ in redirect_storage(demo, inventory, "basic").usage}
    advanced = {pool: used for pool, used, _ in redirect_storage(demo, inventory, "advanced").usage}
    assert basic["b"] == 0 and basic["d"] == 0
    assert advanced["a"] > 0 and advanced["b"] > 0 and advanced["c"] > 0 and advanced["d"] > 0


def test_network_rewrites_routes_dns_links_and_nics(demo: Environment) -> None:
    inventory = same_shaped(demo)
    hardware = place_environment(demo, inventory)
    network = adapt_network(demo, inventory, hardware.mapping)
    assert network.new_address("10.0.0.1") == "10.20.0.1"  # the old management gateway is the inventory's
    assert all(r.address.startswith("10.20.") for r in network.records)
    assert network.dns_servers == ("10.20.8.18",)
    route = next(r for r in network.routes if r.destination == "10.20.8.0/22")
    assert route.gateway == "10.20.0.1"
    assert next(r for r in network.routes if r.destination == "172.16.0.0/12").gateway == "10.20.0.254"
    assert all(link.source_address and link.source_address.startswith("10.20.") for link in network.links)
    macs = [n.new_mac for n in network.nics]
    assert all(m.startswith("52:54:00") for m in macs)
    assert network.addresses.height == len(network.address_map)


def test_map_nodes_like_for_like_or_largest_first(demo: Environment) -> None:
    inventory = make_inventory(
        [("small", 32, 262144, 4000), ("large", 96, 524288, 4000), ("mid", 48, 262144, 4000)]
    )
    largest = map_nodes(demo, inventory, AdaptationPolicy(), "largest")
    assert largest.slot("dir-1").node == "large"  # dir-1 runs the most VMs
    like = map_nodes(demo, inventory, AdaptationPolicy(), "like")
    assert like.slot("dir-1").node == "small"  # the same shape as its old node (32 cores, 256 GiB)
    assert like.slot("dir-2").node == "mid"  # the smallest left that holds 32 cores and 256 GiB


def test_the_plan_renders_as_svg_and_dot(demo: Environment) -> None:
    plan = generate_plan(demo, same_shaped(demo), "basic", "demo-set")
    svg = plan_to_svg(plan)
    xml.dom.minidom.parseString(svg)
    assert all(step.id in svg for step in plan.steps)
    dot = plan_to_dot(plan)
    assert '"director/dir-1" -> "ring/demo-ring-1";' in dot
    assert dot.count("subgraph cluster_") == len(PHASES)


def test_write_the_demo_plan_files_for_the_docs(demo: Environment, tmp_path: Path) -> None:
    from transforms.plan import plan_to_yaml

    plan = generate_plan(demo, more_smaller(), "advanced", "demo-set")
    (tmp_path / "plan.yaml").write_text(plan_to_yaml(plan), encoding="utf-8")
    assert plan.sha256 == generate_plan(demo, more_smaller(), "advanced", "demo-set").sha256  # deterministic


def test_an_environment_without_services_or_volumes_and_only_slow_storage(demo: Environment) -> None:
    import dataclasses

    gone = ("service:", "volume:")
    env = dataclasses.replace(
        demo,
        services=(),
        volumes=(),
        vms=tuple(v for v in demo.vms if v.role != "service"),
        applications=tuple(dataclasses.replace(a, volumes=()) for a in demo.applications),
        components=tuple(c for c in demo.components if c.kind not in ("service", "volume")),
        dependencies=tuple(
            d
            for d in demo.dependencies
            if not d.component_id.startswith(gone) and not d.depends_on_id.startswith(gone)
        ),
    )
    inventory = make_inventory(
        [(f"n{i}", 64, 1 << 20, 9000) for i in range(3)], storage=[("slow", "hdd", 10)]
    )
    plan = generate_plan(env, inventory, "advanced", "edge")
    check_plan(env, inventory, plan)
    middle = ("storage", "volumes", "core-services")
    assert [s.id for s in plan.steps if s.phase in middle and not s.is_gate] == ["storage/pool/slow"]
    assert any(a.kind == "storage-class" and a.subject == "director:dir-1/state" for a in plan.adaptations)
