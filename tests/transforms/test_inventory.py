"""The target inventory: parsed, validated, every problem named with its line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omni_recovery.adapt.inventory import (
    InventoryError,
    inventory_to_yaml,
    load_inventory,
    make_inventory,
    parse_inventory,
)
from omni_recovery.errors import RecoveryError
from tests.builders import same_shaped
from transforms.adapt.vocabulary import AdaptationError
from transforms.documents import Environment
from transforms.plan import generate_plan

EXAMPLE = """\
nodes:
  - name: node-a
    root: file:///srv/omni/targets/node-a     # where this node's filesystem is reached (fsspec URL)
    cpu_cores: 32
    memory_mib: 131072
    disks: [{device: nvme0n1, size_gib: 1900}]
    nics: [{name: eth0, mac: "52:54:00:12:34:56"}]
network:
  subnets: {management: 10.20.0.0/24, services: 10.20.8.0/22, storage: 10.20.16.0/24}
  gateway: 10.20.0.1
  dns: [10.20.0.53]
storage:
  - {name: fast, class: ssd, root: file:///srv/omni/storage/fast, capacity_gib: 4000}
"""


def problems_of(text: str) -> list[tuple[int, str]]:
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text)
    assert isinstance(caught.value, RecoveryError)
    return caught.value.problems


def test_the_documented_example_parses() -> None:
    inventory = parse_inventory(EXAMPLE)
    node = inventory.node("node-a")
    assert (node.cpu_cores, node.memory_mib, node.disk_gib) == (32, 131072, 1900)
    assert node.nics[0].mac == "52:54:00:12:34:56"
    assert inventory.network.subnet("services") == "10.20.8.0/22"
    assert inventory.network.gateway == "10.20.0.1"
    assert inventory.network.dns == ("10.20.0.53",)
    assert inventory.storage[0].storage_class == "ssd"
    assert inventory.storage[0].line == 13


def test_an_unquoted_mac_keeps_its_text_and_case_is_normalised() -> None:
    # YAML 1.1 reads 52:54:00:12:34:56 as a base-60 number; the inventory keeps the text.
    text = EXAMPLE.replace('"52:54:00:12:34:56"', "52:54:00:AB:34:56")
    assert parse_inventory(text).nodes[0].nics[0].mac == "52:54:00:ab:34:56"


def test_load_inventory_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    assert load_inventory(path).nodes[0].name == "node-a"
    with pytest.raises(InventoryError, match="cannot be read"):
        load_inventory(tmp_path / "missing.yaml")


def test_make_inventory_round_trips_through_yaml() -> None:
    inventory = make_inventory([("a", 8, 16384, 100), ("b", 16, 32768, 200)])
    assert parse_inventory(inventory_to_yaml(inventory)) == inventory


def test_a_worker_queue_is_the_given_one_else_omni_and_the_name() -> None:
    inventory = parse_inventory(
        EXAMPLE.replace("    cpu_cores: 32", "    worker_queue: rack-1\n    cpu_cores: 32", 1)
    )
    assert inventory.node("node-a").queue == "rack-1"
    assert inventory.storage[0].queue == "omni-fast" and inventory.storage[0].worker_queue is None
    pool = dataclasses.replace(inventory.storage[0], worker_queue="rack-1")
    with_pool = dataclasses.replace(inventory, storage=(pool,))
    assert parse_inventory(inventory_to_yaml(with_pool)) == with_pool
    [(line, problem)] = problems_of(
        EXAMPLE.replace("    cpu_cores: 32", "    worker_queue: a/b\n    cpu_cores: 32")
    )
    assert line == 4 and "worker_queue 'a/b' must be letters, digits" in problem


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        (
            "10.20.8.0/22,",
            "10.20.8.1/22,",
            9,
            "services '10.20.8.1/22' has host bits set; did you mean 10.20.8.0/22?",
        ),
        ("10.20.8.0/22,", "10.20.8.0/33,", 9, "services '10.20.8.0/33' is not an IPv4 CIDR"),
        ("10.20.8.0/22,", "10.20.8.0,", 9, "services '10.20.8.0' is not an IPv4 CIDR like 10.20.0.0/24"),
        (
            "storage: 10.20.16.0/24",
            "storage: 10.20.0.128/25",
            9,
            "storage 10.20.0.128/25 overlaps management",
        ),
        (
            "gateway: 10.20.0.1",
            "gateway: 10.30.0.1",
            10,
            "gateway 10.30.0.1 is outside the management subnet",
        ),
        ("gateway: 10.20.0.1", "gateway: 10.20.0.0", 10, "is the network or broadcast address"),
        ("gateway: 10.20.0.1", "gateway: banana", 10, "gateway 'banana' is not an IPv4 address"),
        ("dns: [10.20.0.53]", "dns: [10.20.0.300]", 11, "'10.20.0.300' is not an IPv4 address"),
        ("class: ssd", "class: flash", 13, "unknown storage class 'flash' (known: hdd, nvme, ssd)"),
        ("capacity_gib: 4000", "capacity_gib: 0", 13, "capacity_gib must be positive, found 0"),
        ("cpu_cores: 32", "cpu_cores: -2", 4, "cpu_cores must be positive, found -2"),
        ("memory_mib: 131072", "memory_mib: lots", 5, "memory_mib must be a whole number"),
        ("size_gib: 1900", "size_gib: 0", 6, "size_gib must be positive"),
        ('"52:54:00:12:34:56"', '"52:54:00:12:34"', 7, "is not a MAC address"),
        ('"52:54:00:12:34:56"', '"01:00:5e:00:00:01"', 7, "multicast"),
        ("cpu_cores: 32", "cpu_core: 32", 4, "unknown field 'cpu_core'"),
        ("root: file:///srv/omni/targets/node-a", "root: targets/node-a", 3, "must be an fsspec URL"),
        ("name: node-a", "name: ../node-a", 2, "must be letters, digits"),
    ],
)
def test_each_problem_is_named_with_its_line(old: str, new: str, line: int, message: str) -> None:
    assert old in EXAMPLE
    found = problems_of(EXAMPLE.replace(old, new, 1))
    assert any(at == line and message in text for at, text in found), found


def with_second_node(name: str, root: str, mac: str) -> str:
    """EXAMPLE with another node (lines 8-13) after node-a."""
    second = f"""  - name: {name}
    root: {root}
    cpu_cores: 8
    memory_mib: 8192
    disks: [{{device: sda, size_gib: 100}}]
    nics: [{{name: eth0, mac: "{mac}"}}]
"""
    return EXAMPLE.replace("network:\n", second + "network:\n", 1)


def test_duplicates_are_refused_with_both_lines() -> None:
    text = with_second_node("node-a", "file:///srv/omni/targets/node-b", "52:54:00:12:34:56")
    text += "  - {name: fast, class: hdd, root: file:///srv/omni/storage/slow, capacity_gib: 10}\n"
    found = problems_of(text)
    messages = "\n".join(f"{line}: {msg}" for line, msg in found)
    assert "8: duplicate node name 'node-a' (first at line 2)" in messages
    assert "13: node node-a: nic #1: duplicate MAC 52:54:00:12:34:56 (also on node-a, line 7)" in messages
    assert "20: duplicate storage name 'fast' (first at line 19)" in messages


def test_roots_must_be_separate() -> None:
    text = with_second_node("node-b", "/srv/omni/targets/node-a/", "52:54:00:12:34:57")
    text += "  - {name: slow, class: hdd, root: file:///srv/omni/targets/node-a/slow, capacity_gib: 10}\n"
    messages = "\n".join(f"{line}: {msg}" for line, msg in problems_of(text))
    assert (
        "8: node node-b: root /srv/omni/targets/node-a is also the root of node node-a; each needs its own"
        in messages
    )
    assert (
        "20: storage slow: root file:///srv/omni/targets/node-a/slow lies inside the root of node node-b"
        in (messages)
    )
    parse_inventory(with_second_node("node-b", "/srv/omni/targets/node-b", "52:54:00:12:34:57"))


def test_all_problems_are_reported_at_once_and_the_message_lists_them() -> None:
    text = EXAMPLE.replace("class: ssd", "class: tape").replace("gateway: 10.20.0.1", "gateway: 10.9.0.1")
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, source="site.yaml")
    message = str(caught.value)
    assert "site.yaml:10: network: gateway 10.9.0.1 is outside the management subnet 10.20.0.0/24" in message
    assert "site.yaml:13: storage fast: unknown storage class 'tape' (known: hdd, nvme, ssd)" in message


def test_missing_sections_and_bad_yaml() -> None:
    assert any("missing field 'storage'" in m for _, m in problems_of(EXAMPLE.split("storage:\n")[0]))
    assert problems_of("nodes: [\n")[0][0] >= 1
    assert any("must be a mapping" in m for _, m in problems_of("- 1\n- 2\n"))
    assert any(
        "missing field 'management'" in m
        for _, m in problems_of(EXAMPLE.replace("management: 10.20.0.0/24, ", ""))
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 256), st.integers(1, 1 << 22), st.integers(1, 100_000)),
        min_size=1,
        max_size=8,
    ),
    st.lists(
        st.tuples(st.sampled_from(("ssd", "hdd", "nvme")), st.integers(1, 100_000)), min_size=1, max_size=4
    ),
)
def test_any_valid_inventory_round_trips(
    nodes: list[tuple[int, int, int]], pools: list[tuple[str, int]]
) -> None:
    inventory = make_inventory(
        [(f"node-{i}", *n) for i, n in enumerate(nodes)],
        storage=[(f"pool-{i}", klass, cap) for i, (klass, cap) in enumerate(pools)],
    )
    text = inventory_to_yaml(inventory)
    assert parse_inventory(text) == inventory


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2), st.sampled_from(("x", "-1", "0", "1.5.6", "10.0.0.0/40", "'52:54'", "[]", "{}")))
def test_a_broken_value_is_always_named_with_its_line(which: int, bad: str) -> None:
    key = ("cpu_cores: 32", "gateway: 10.20.0.1", "capacity_gib: 4000")[which]
    text = EXAMPLE.replace(key, key.split(":")[0] + ": " + bad, 1)
    found = problems_of(text)
    assert all(line > 0 for line, _ in found)
    assert any(line == (4, 10, 13)[which] for line, _ in found), found


def test_subnets_are_named_after_the_sets_own_not_a_fixed_list(demo: Environment) -> None:
    replication = EXAMPLE.replace("storage: 10.20.16.0/24}", "replication: 10.20.16.0/24}")
    inventory = parse_inventory(replication)
    assert inventory.network.subnet("replication") == "10.20.16.0/24"
    assert inventory.network.subnet("storage") is None
    assert any(
        "'bad name!' is not a subnet name" in m
        for _, m in problems_of(EXAMPLE.replace("storage: 10.20", "'bad name!': 10.20"))
    )
    assert any("overlaps" in m for _, m in problems_of(EXAMPLE.replace("16.0/24}", "0.0/25}")))
    site = same_shaped(demo)
    subnets = dict(site.network.subnets)
    two = (("management", subnets["management"]), ("services", subnets["services"]))
    lacking = dataclasses.replace(site, network=dataclasses.replace(site.network, subnets=two))
    with pytest.raises(AdaptationError, match=r"old subnet storage .* has no counterpart"):
        generate_plan(demo, lacking, "basic", "set")
    four = (*site.network.subnets, ("replication", "10.20.32.0/24"))
    plan = generate_plan(
        demo,
        dataclasses.replace(site, network=dataclasses.replace(site.network, subnets=four)),
        "basic",
        "set",
    )
    assert {s.name for s in plan.subnets} == {s.name for s in demo.network.subnets}  # one unused
