"""Environment documents another writer made, following only docs' backup-format spec, are planned.

The spec names fewer fields than this project's writer writes: an Orchestrator's config.yaml holds
(cluster id, peers, placement) and no `vm_id`; app.yaml and service.yaml name no `vm`; depends_on may
list plain names; original hardware is in `directors/{id}/hardware.yaml` and the index's hardware
table, not in `nodes/*.yaml`, and no config.yaml names its Director's node. The texts are built as
`omni_recovery.plan.generate.read_set_environment` hands them over (environment paths → text, components
and dependencies from the index), from the demo's files with this project's extra fields removed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from omni_recovery.backupset.index_db import Component, HardwareNode
from tests.builders import same_shaped
from tests.transforms.test_adaptation_properties import check_plan
from transforms.documents import Environment, environment_from_files
from transforms.plan import Plan, generate_plan, plan_from_yaml, plan_to_yaml
from transforms.target_layout import target_layout

Texts = dict[str, str]


def demo_texts(root: Path) -> Texts:
    return {
        str(p.relative_to(root)): p.read_text(encoding="utf-8")
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in (".yaml", ".json") and "/files/" not in str(p)
    }


def edit_yaml(texts: Texts, rel: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    texts[rel] = yaml.safe_dump(change(yaml.safe_load(texts[rel])), sort_keys=False)


def only(doc: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: doc[k] for k in keys if k in doc}


def spec_only(texts: Texts) -> Texts:
    """The demo's files with only the fields the spec's "data/ by kind" table names."""
    texts = {rel: text for rel, text in texts.items() if not rel.startswith("nodes/")}
    for rel in list(texts):
        parts = rel.split("/")
        if rel.startswith("orchestrators/") and parts[-1] == "config.yaml":
            edit_yaml(texts, rel, lambda d: only(d, "cluster_id", "peers", "placement"))
        elif rel.startswith("directors/") and parts[-1] == "config.yaml":
            edit_yaml(texts, rel, lambda d: only(d, "ring_id", "addresses", "storage_paths", "reservations"))
        elif rel.startswith("directors/") and parts[-1] == "hardware.yaml":
            edit_yaml(texts, rel, lambda d: only(d, "hostname", "cpu_cores", "memory_mib", "disks", "nics"))
        elif rel.startswith("services/"):
            edit_yaml(texts, rel, lambda d: only(d, "category", "role"))
        elif rel.startswith("applications/") and parts[-1] == "app.yaml":
            edit_yaml(texts, rel, plain_app)
    return texts


def plain_app(doc: dict[str, Any]) -> dict[str, Any]:
    """app.yaml with the spec's fields only, depends_on as a plain list of names."""
    doc = only(doc, "name", "priority", "orchestrator", "containers", "volumes", "depends_on")
    doc["depends_on"] = [d["app"] for d in doc.get("depends_on") or []]
    return doc


def foreign_index(demo: Environment) -> tuple[Component, ...]:
    """The index's components without this project's attributes (another writer's are its own)."""
    return tuple(replace(c, attributes={}) for c in demo.components)


def hardware_rows(demo_root: Path) -> tuple[HardwareNode, ...]:
    """The index's hardware table, as the spec describes it."""
    rows = []
    for path in sorted((demo_root / "nodes").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        rows.append(
            HardwareNode(
                doc["hostname"], doc["role"], doc["cpu_cores"], doc["memory_mib"], doc["disks"], doc["nics"]
            )
        )
    return tuple(rows)


def foreign(
    demo: Environment, texts: Texts, hardware: tuple[HardwareNode, ...] = (), dependencies: bool = True
) -> Environment:
    deps = demo.dependencies if dependencies else ()
    return environment_from_files(texts, foreign_index(demo), deps, demo.name, hardware)


def plan_of(env: Environment, demo: Environment, mode: str = "basic") -> Plan:
    inventory = same_shaped(demo)
    plan = generate_plan(env, inventory, mode, "foreign-set")
    check_plan(env, inventory, plan)
    plan_from_yaml(plan_to_yaml(plan), inventory=inventory, environment=env)  # reads back, valid
    return plan


@pytest.fixture(scope="module")
def spec_texts(demo_root: Path) -> Texts:
    return spec_only(demo_texts(demo_root))


def test_vms_are_matched_to_what_runs_on_them_without_vm_fields(demo: Environment, spec_texts: Texts) -> None:
    env = foreign(demo, spec_texts)
    assert {vm.vm_id: (vm.owner, vm.role) for vm in env.vms} == {
        vm.vm_id: (vm.owner, vm.role) for vm in demo.vms
    }
    assert [(o.orchestrator_id, o.vm_id, o.director) for o in env.orchestrators] == [
        (o.orchestrator_id, o.vm_id, o.director) for o in demo.orchestrators
    ]
    assert [s.vm_id for s in env.services] == [s.vm_id for s in demo.services]
    assert [a.vm_id for a in env.applications] == [a.vm_id for a in demo.applications]
    assert all(o.address is None for o in env.orchestrators)


def test_plain_depends_on_takes_its_strength_from_the_index(demo: Environment, spec_texts: Texts) -> None:
    env = foreign(demo, spec_texts)
    assert [a.depends_on for a in env.applications] == [a.depends_on for a in demo.applications]
    assert any(s == "soft" for a in env.applications for _, s in a.depends_on)
    without_index = foreign(demo, spec_texts, dependencies=False)
    assert [a.depends_on for a in without_index.applications] == [
        tuple((name, "hard") for name, _ in a.depends_on) for a in demo.applications
    ]


def test_director_hosts_come_from_hardware_yaml(demo: Environment, spec_texts: Texts) -> None:
    env = foreign(demo, spec_texts)
    assert [d.node for d in env.directors] == [d.node for d in demo.directors]
    hosts = {d.node for d in demo.directors}
    assert env.nodes == tuple(n for n in demo.nodes if n.name in hosts)
    assert all(nic.ip and nic.subnet for node in env.nodes for nic in node.nics)


def test_the_index_hardware_table_adds_the_other_nodes(
    demo: Environment, demo_root: Path, spec_texts: Texts
) -> None:
    env = foreign(demo, spec_texts, hardware_rows(demo_root))
    assert sorted(env.nodes, key=lambda n: n.name) == sorted(demo.nodes, key=lambda n: n.name)


def test_without_hardware_yaml_the_index_row_holding_a_directors_address_is_its_node(
    demo: Environment, demo_root: Path, spec_texts: Texts
) -> None:
    texts = {rel: t for rel, t in spec_texts.items() if not rel.endswith("/hardware.yaml")}
    env = foreign(demo, texts, hardware_rows(demo_root))
    assert [d.node for d in env.directors] == [d.node for d in demo.directors]
    assert sorted(n.name for n in env.nodes) == sorted(n.name for n in demo.nodes)


@pytest.mark.parametrize("mode", ["basic", "advanced"])
def test_a_spec_only_environment_is_planned_like_ours(
    demo: Environment, spec_texts: Texts, mode: str
) -> None:
    env = foreign(demo, spec_texts)
    plan = plan_of(env, demo, mode)
    ours = generate_plan(demo, same_shaped(demo), mode, "foreign-set")
    assert plan.placements == ours.placements
    assert {s.id: s.depends_on for s in plan.steps} == {s.id: s.depends_on for s in ours.steps}
    director_nodes = [a for a in plan.adaptations if a.kind == "node" and "Director" in a.subject]
    assert director_nodes and not any("unknown" in a.old for a in director_nodes)
    # every NIC of the Director hosts takes the inventory's MAC and its re-allocated address
    macs = [a for a in plan.adaptations if a.kind == "mac"]
    assert len(macs) == sum(len(n.nics) for n in env.nodes) and all("10.20." in a.new for a in macs)


def test_vms_are_matched_by_address_when_their_names_say_nothing(
    demo: Environment, spec_texts: Texts
) -> None:
    texts = _vms_renamed(spec_texts, lambda vm: True)
    env = foreign(demo, texts)  # dns.yaml's records name their component and its address
    assert {vm.vm_id: vm.owner for vm in env.vms} == {vm.vm_id: vm.owner for vm in demo.vms}


def test_unclaimed_vms_stay_with_their_director_and_the_plan_is_usable(
    demo: Environment, spec_texts: Texts
) -> None:
    texts = _vms_renamed(spec_texts, lambda vm: vm["role"] == "app")
    edit_yaml(texts, "network/dns.yaml", lambda d: {**d, "records": []})
    env = foreign(demo, texts)
    app_vms = [vm for vm in env.vms if vm.role == "app"]
    assert app_vms and all(vm.owner == f"director:{vm.director}" for vm in app_vms)
    assert all(a.vm_id is None for a in env.applications)
    plan = plan_of(env, demo)
    orchestrator_node = {s.component: s.node for s in plan.steps if s.phase == "orchestrators"}
    for step in (s for s in plan.steps if s.id.startswith("application/")):
        app = env.application(step.id.partition("/")[2])
        assert not step.action.startswith("create VM")  # placed by its Orchestrator
        assert step.node == orchestrator_node[f"orchestrator:{app.orchestrator}"]


def test_other_shapes_of_the_spec_fields_are_read(demo: Environment, spec_texts: Texts) -> None:
    texts = dict(spec_texts)
    subnets = yaml.safe_load(texts["network/subnets.yaml"])["subnets"]
    texts["network/subnets.yaml"] = yaml.safe_dump([{"name": k, **v} for k, v in subnets.items()])
    for rel in [r for r in texts if r.endswith("/state.json")]:
        state = json.loads(texts[rel])
        for vm in state["vms"]:
            vm["networks"] = [
                f"{n['ip']}/22" if n["subnet"] == "services" else n["ip"] for n in vm["networks"]
            ]
        texts[rel] = json.dumps(state)
    edit_yaml(texts, "applications/orders/app.yaml", lambda d: {**d, "depends_on": {"billing": "soft"}})
    edit_yaml(
        texts,
        "directors/dir-1/config.yaml",
        lambda d: {**d, "addresses": list(d["addresses"].values()), "storage_paths": ["/var/lib/omni"]},
    )
    env = foreign(demo, texts, dependencies=False)
    assert env.network.subnets == demo.network.subnets
    assert [vm.networks for vm in env.vms] == [vm.networks for vm in demo.vms]
    assert env.application("orders").depends_on == (("billing", "soft"),)
    dir1 = env.director("dir-1")
    assert dir1.addresses == demo.director("dir-1").addresses
    assert dir1.storage_paths == (("omni", "/var/lib/omni"),)
    plan_of(env, demo)


def _vms_renamed(texts: Texts, which: Callable[[dict[str, Any]], bool]) -> Texts:
    """`texts` with the VMs `which` picks in every Director's state.json named after their id only."""
    out = dict(texts)
    for rel in [r for r in out if r.endswith("/state.json")]:
        state = json.loads(out[rel])
        for vm in state["vms"]:
            if which(vm):
                vm["name"] = f"host-{vm['vm_id']}"
        out[rel] = json.dumps(state)
    return out


def test_the_restore_layout_is_made_from_spec_only_documents(
    demo: Environment, demo_root: Path, spec_texts: Texts
) -> None:
    env = foreign(demo, spec_texts, hardware_rows(demo_root))
    plan = plan_of(env, demo, "advanced")
    documents = {rel: text.encode() for rel, text in spec_texts.items()}
    env_files = [(rel, "file", 0o100644) for rel in sorted(spec_texts)]
    layout = target_layout(env, documents, plan, same_shaped(demo), env_files=env_files)
    placed = {f.origin for f in layout.files}
    assert {rel for rel in spec_texts if rel != "keys/ca.key"} <= placed
