"""The target layout of the tiny demo environment: where every file lands and what is rewritten."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from omni_recovery.adapt.inventory import Inventory
from omni_recovery.backupset.layout import check_relative_path
from omni_recovery.envstate.model import volume_files_root, walk_environment
from omni_recovery.urls import is_under
from tests.builders import fewer_larger, more_smaller, same_shaped
from transforms.adapt.storage_paths import safe_join
from transforms.adapt.vocabulary import Adaptation
from transforms.documents import Environment
from transforms.plan import Plan, generate_plan
from transforms.target_layout import (
    EDITED_REASON,
    OLD_CA_CERT,
    RESTORED_EVENT,
    LayoutError,
    TargetFile,
    TargetLayout,
    is_restored,
    issued_paths,
    node_root,
    pool_root,
    target_layout,
)

SHARED = ("environment.yaml", "recovery/", "keys/", "network/", "nodes/")

EnvFiles = list[tuple[str, str, int]]


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    env: Environment
    inventory: Inventory
    plan: Plan
    layout: TargetLayout


@pytest.fixture(scope="module")
def env(demo: Environment) -> Environment:
    return demo


@pytest.fixture(scope="module")
def env_files(demo_root: Path) -> EnvFiles:
    return [(e.relpath, e.type, e.mode) for e in walk_environment(demo_root)]


@pytest.fixture(scope="module")
def documents(demo_root: Path) -> dict[str, bytes]:
    return {
        e.relpath: e.abspath.read_bytes()
        for e in walk_environment(demo_root)
        if e.type == "file"
        and volume_files_root(e.relpath) is None
        and e.relpath.endswith((".yaml", ".json"))
        and "/db/" not in e.relpath
    }


@pytest.fixture(scope="module", params=["same-basic", "same-advanced", "fewer-larger", "more-smaller"])
def case(
    request: pytest.FixtureRequest, env: Environment, documents: dict[str, bytes], env_files: EnvFiles
) -> Case:
    name = request.param
    inventory = {
        "same-basic": same_shaped(env),
        "same-advanced": same_shaped(env),
        "fewer-larger": fewer_larger(),
        "more-smaller": more_smaller(),
    }[name]
    mode = "basic" if name == "same-basic" else "advanced"
    plan = generate_plan(env, inventory, mode, "demo-20261124t0200z")
    layout = target_layout(env, documents, plan, inventory, env_files=env_files)
    return Case(name, env, inventory, plan, layout)


def load(f: TargetFile, documents: dict[str, bytes]) -> Any:
    raw = f.content if f.content is not None else documents[f.source or ""]
    return json.loads(raw) if f.relpath.endswith(".json") else yaml.safe_load(raw)


def director_roots(case: Case) -> set[str]:
    return {node_root(n.name) for n in case.plan.nodes if n.director}


def in_new_subnets(case: Case, address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(s.new) for s in case.plan.subnets)


# -- placement of files ------------------------------------------------------------------------------


def test_every_env_file_lands_exactly_once_but_the_old_private_keys(case: Case, env_files: EnvFiles) -> None:
    layout = case.layout
    per_origin = Counter(f.origin for f in layout.files)
    dropped = {rel for rel, _ in layout.dropped}
    directors = len(director_roots(case))
    keys = [rel for rel, _, _ in env_files if not is_restored(rel)]
    assert keys == ["keys/ca.key"]
    for rel, _, _ in env_files:
        if not is_restored(rel) or rel in dropped:
            assert per_origin[rel] == 0
        elif rel.startswith(SHARED):
            assert per_origin[rel] == directors, rel
        else:
            assert per_origin[rel] == 1, rel
    assert set(per_origin) <= {rel for rel, _, _ in env_files}
    mentioned = {x for f in layout.files for x in (f.relpath, f.source, f.origin)} | dropped
    assert "keys/ca.key" not in mentioned, "the old CA key is never restored"
    retired = {a.subject.split()[1] for a in case.plan.adaptations if a.kind == "node" and a.new == "retired"}
    assert dropped == {f"nodes/{name}.yaml" for name in retired}
    if case.name == "fewer-larger":
        assert dropped == {"nodes/demo-node-04.yaml", "nodes/demo-node-05.yaml"}


def test_files_go_to_the_node_or_pool_the_plan_says(case: Case) -> None:
    plan, env = case.plan, case.env
    node_of_director = {n.director: n.name for n in plan.nodes if n.director}
    node_of_component = {p.component: p.node for p in plan.placements}
    paths = {p.subject: p for p in plan.paths}
    for f in case.layout.files:
        parts = f.relpath.split("/")
        if f.relpath.startswith(SHARED):
            assert f.root in director_roots(case)
        elif parts[0] == "directors":
            assert f.root == node_root(node_of_director[parts[1]])
        elif parts[0] in ("orchestrators", "services", "applications"):
            kind = {"orchestrators": "orchestrator", "services": "service", "applications": "application"}
            assert f.root == node_root(node_of_component[f"{kind[parts[0]]}:{parts[1]}"])
        elif parts[3] == "volume.yaml":
            assert f.root == node_root(node_of_component[f"application:{parts[1]}"])
        else:
            assert parts[3] == "files" and f.root == pool_root(paths[f"volume:{parts[1]}/{parts[2]}"].pool)
    assert set(case.layout.volume_roots) == {v.component_id for v in env.volumes}


def test_nothing_lies_outside_its_root(case: Case) -> None:
    pools = {pool_root(p.name): p.root for p in case.plan.pools}
    roots = director_roots(case) | set(pools)
    for f in case.layout.files:
        assert (f.source is None) != (f.content is None)
        assert f.root in roots
        check_relative_path(f.relpath)
        if f.root in pools:
            assert is_under(pools[f.root], safe_join(pools[f.root], *f.relpath.split("/")))
            assert f.type in ("file", "dir", "symlink") and f.source == f.origin
            assert f.component == f"volume:{'/'.join(f.source.split('/')[1:3])}"  # type: ignore[union-attr]
    for component, (root, files) in case.layout.volume_roots.items():
        path = next(p for p in case.plan.paths if p.subject == component)
        assert files == f"{path.new_path.removeprefix(pools[root] + '/')}/files"
        assert is_under(pools[root], f"{path.new_path}/files")
    kinds = Counter(f.type for f in case.layout.files)
    assert kinds["dir"] > 0 and kinds["symlink"] > 0  # empty folders and relative links survive


def test_shared_documents_are_identical_on_every_director_node(case: Case) -> None:
    by_root: dict[str, dict[str, tuple[str | None, bytes | None, int]]] = {}
    for f in case.layout.files:
        if f.relpath.startswith(SHARED):
            by_root.setdefault(f.root, {})[f.relpath] = (f.source, f.content, f.mode)
    assert set(by_root) == director_roots(case)
    first, *others = by_root.values()
    assert all(other == first for other in others)
    new_nodes = {n.name for n in case.plan.nodes if n.old_node}
    assert {r for r in first if r.startswith("nodes/")} == {f"nodes/{n}.yaml" for n in new_nodes}
    assert "keys/old-ca.crt" in first and "environment.yaml" in first
    assert "keys/ca.crt" not in first, "keys/ca.crt is the new CA's, issued at restore time"


# -- rewritten values --------------------------------------------------------------------------------


def test_director_documents_carry_the_plans_values(case: Case, documents: dict[str, bytes]) -> None:
    plan, layout = case.plan, case.layout
    addresses = {a.old: a.new for a in plan.addresses}
    paths = {p.subject: p for p in plan.paths}
    pools = {p.name: p.root for p in plan.pools}
    placements = {p.vm_id: p for p in plan.placements}
    for entry in (n for n in plan.nodes if n.director):
        root, did = node_root(entry.name), entry.director
        config = load(layout.file(root, f"directors/{did}/config.yaml"), documents)
        old_config = yaml.safe_load(documents[f"directors/{did}/config.yaml"])
        assert config["node"] == entry.name
        for name, address in config["addresses"].items():
            assert address == addresses[old_config["addresses"][name]] and in_new_subnets(case, address)
        for name, path in config["storage_paths"].items():
            planned = paths[f"director:{did}/{name}"]
            assert path == planned.new_path and is_under(pools[planned.pool], path)
        assert config["ring_peers"] == old_config["ring_peers"]

        state = load(layout.file(root, f"directors/{did}/state.json"), documents)
        hosted = {p.vm_id for p in plan.placements if p.director == did}
        assert {vm["vm_id"] for vm in state["vms"]} == hosted
        for vm in state["vms"]:
            placed = placements[vm["vm_id"]]
            assert (vm["cpu"], vm["memory_mib"]) == (placed.cpu, placed.memory_mib)
            assert all(in_new_subnets(case, n["ip"]) for n in vm["networks"])
        old_state = json.loads(documents[f"directors/{did}/state.json"])
        assert state["history"][:-1] == old_state["history"]
        assert state["history"][-1] == {
            "at": "2026-10-12T12:34:18Z",
            "event": RESTORED_EVENT,
            "detail": "restored from backup demo-20261124t0200z",
        }

        hardware = load(layout.file(root, f"directors/{did}/hardware.yaml"), documents)
        node = case.inventory.node(entry.name)
        assert hardware["hostname"] == entry.name
        assert (hardware["cpu_cores"], hardware["memory_mib"]) == (node.cpu_cores, node.memory_mib)
        assert [n["mac"] for n in hardware["nics"]] == [n.mac for n in node.nics]
        assert all(in_new_subnets(case, n["ip"]) for n in hardware["nics"] if n.get("ip"))
        assert load(layout.file(root, f"nodes/{entry.name}.yaml"), documents) == hardware


def test_workload_documents_carry_the_plans_values(case: Case, documents: dict[str, bytes]) -> None:
    plan, layout, env = case.plan, case.layout, case.env
    addresses = {a.old: a.new for a in plan.addresses}
    by_component = {p.component: p for p in plan.placements}
    for o in env.orchestrators:
        p = by_component[f"orchestrator:{o.orchestrator_id}"]
        config = load(
            layout.file(node_root(p.node), f"orchestrators/{o.orchestrator_id}/config.yaml"), documents
        )
        assert config["director"] == p.director
        assert config["address"] == addresses[str(o.address)] and in_new_subnets(case, config["address"])
    for app in env.applications:
        p = by_component[f"application:{app.name}"]
        doc = load(layout.file(node_root(p.node), f"applications/{app.name}/app.yaml"), documents)
        old = yaml.safe_load(documents[f"applications/{app.name}/app.yaml"])
        vm = env.vm(p.vm_id)
        for new_c, old_c in zip(doc["containers"], old["containers"], strict=True):
            assert new_c["cpu"] == pytest.approx(old_c["cpu"] * p.cpu / vm.cpu, abs=0.0005)
            assert new_c["memory_mib"] == round(old_c["memory_mib"] * p.memory_mib / vm.memory_mib)
        secrets = layout.file(node_root(p.node), f"applications/{app.name}/secrets.json")
        assert secrets.source == f"applications/{app.name}/secrets.json" and secrets.mode & 0o777 == 0o600
    for volume in env.volumes:
        p = by_component[f"application:{volume.app}"]
        path = next(x for x in plan.paths if x.subject == volume.component_id)
        doc = load(
            layout.file(node_root(p.node), f"volumes/{volume.app}/{volume.name}/volume.yaml"), documents
        )
        assert doc["source_path"] == path.new_path
        assert doc["storage_class"] == next(x.storage_class for x in plan.pools if x.name == path.pool)


def test_network_documents_follow_the_network_adaptation(case: Case, documents: dict[str, bytes]) -> None:
    root = sorted(director_roots(case))[0]
    layout, plan = case.layout, case.plan
    subnets = load(layout.file(root, "network/subnets.yaml"), documents)["subnets"]
    assert {name: s["cidr"] for name, s in subnets.items()} == {s.name: s.new for s in plan.subnets}
    assert subnets["management"]["gateway"] == case.inventory.network.gateway
    dns = load(layout.file(root, "network/dns.yaml"), documents)
    assert all(in_new_subnets(case, r["address"]) for r in dns["records"])
    assert all(in_new_subnets(case, s) for s in dns["servers"])
    environment = load(layout.file(root, "environment.yaml"), documents)
    assert environment["dns"]["servers"] == dns["servers"]
    routes = load(layout.file(root, "network/routes.yaml"), documents)["routes"]
    assert {r["destination"] for r in routes} == {
        "0.0.0.0/0",
        "10.20.8.0/22",
        "10.20.0.0/24",
        "172.16.0.0/12",
    }
    assert all(in_new_subnets(case, r["gateway"]) for r in routes)
    assert routes[-1]["description"] == "operations VPN"  # fields the rewrite does not know are kept
    for name in ("network/policies.yaml", "network/connectivity.yaml", "recovery/recovery_metadata.yaml"):
        assert layout.file(root, name).source == name  # nothing in them names an address


# -- restored = source except the listed adaptations -------------------------------------------------


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(leaves(v, f"{prefix}.{k}"))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(leaves(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def explained(old: Any, new: Any, adaptations: tuple[Adaptation, ...]) -> bool:
    """Some adaptation says old -> new (each value a word of its old / new text)."""

    def words(text: str) -> set[str]:
        return set(text.replace(",", " ").replace(":", " ").split()) | {text}

    return any(str(old) in words(a.old) and str(new) in words(a.new) for a in adaptations)


def test_the_layout_differs_from_the_source_only_where_adaptations_are_listed(
    case: Case, documents: dict[str, bytes]
) -> None:
    layout, plan = case.layout, case.plan
    applied = layout.adaptations_applied
    assert len(set(applied)) == len(applied)
    assert set(applied) <= set(plan.adaptations)  # a generated plan needs nothing synthesised
    assert not any(a.reason == EDITED_REASON for a in applied)
    moved = {a.subject for a in applied if a.kind == "placement"}
    scaled = {a.subject for a in applied if a.kind == "scaling"}
    old_vms = {
        vm["vm_id"]: vm
        for d in case.env.directors
        for vm in json.loads(documents[f"directors/{d.director_id}/state.json"])["vms"]
    }
    for f in layout.files:
        if f.content is None:
            assert f.source == f.origin
            if f.type == "file" and f.source in documents:
                assert f.relpath == f.origin  # copied documents keep their place
            continue
        old, new = (
            load(TargetFile(f.root, f.origin or "", f.origin, None, 0, None), documents),
            load(f, documents),
        )
        name = f.relpath.rsplit("/", 1)[-1]
        if name == "hardware.yaml" or f.relpath.startswith("nodes/"):
            continue  # the new node's own hardware, as a whole: checked against the inventory above
        if name == "state.json":
            for vm in new["vms"]:
                before, owner = old_vms[vm["vm_id"]], case.env.vm(vm["vm_id"]).owner
                if before not in old["vms"] and before["vm_id"] not in {v["vm_id"] for v in old["vms"]}:
                    assert f"VM {vm['name']} ({owner})" in moved  # it came from another Director
                for key, value in leaves(vm).items():
                    was = leaves(before)[key]
                    if was != value and key in (".cpu", ".memory_mib"):
                        assert owner in scaled, f"{vm['name']}{key}"
                    elif was != value:
                        assert explained(was, value, applied), f"{f.relpath} {vm['name']}{key}"
            assert new["history"][:-1] == old["history"]
            continue
        before_leaves, after_leaves = leaves(old), leaves(new)
        assert before_leaves.keys() == after_leaves.keys(), f.relpath
        for key, value in after_leaves.items():
            was = before_leaves[key]
            if was == value:
                continue
            if name == "app.yaml" and key.split(".")[-1] in ("cpu", "memory_mib"):
                assert f"application:{f.relpath.split('/')[1]}" in scaled
                continue
            assert explained(was, value, applied), f"{f.relpath}{key}: {was!r} -> {value!r}"
    if case.name == "same-basic":
        assert not moved and not scaled


def test_the_same_inputs_give_the_same_bytes(
    case: Case, documents: dict[str, bytes], env_files: EnvFiles
) -> None:
    shuffled = list(env_files)
    random.Random(7).shuffle(shuffled)
    again = target_layout(case.env, dict(documents), case.plan, case.inventory, env_files=shuffled)
    assert again == case.layout


# -- edited and bad plans ------------------------------------------------------------------------------


def test_an_edited_plan_is_followed_and_its_edits_are_listed(
    env: Environment, documents: dict[str, bytes], env_files: EnvFiles
) -> None:
    inventory = same_shaped(env)
    plan = generate_plan(env, inventory, "basic", "demo-set")
    nodes = {n.director: n.name for n in plan.nodes if n.director}
    billing = next(p for p in plan.placements if p.component == "application:billing")
    target = next(d for d in sorted(nodes) if d != billing.director)
    moved = dataclasses.replace(billing, director=target, node=nodes[target], cpu=billing.cpu - 1)
    edited = dataclasses.replace(
        plan, placements=tuple(moved if p is billing else p for p in plan.placements)
    )
    layout = target_layout(env, documents, edited, inventory, env_files=env_files)
    state = json.loads(layout.file(node_root(nodes[target]), f"directors/{target}/state.json").content or b"")
    assert billing.vm_id in {vm["vm_id"] for vm in state["vms"]}
    assert layout.file(node_root(nodes[target]), "applications/billing/app.yaml")
    synthesised = [a for a in layout.adaptations_applied if a.reason == EDITED_REASON]
    assert {a.kind for a in synthesised} == {"placement", "scaling"}
    assert all(
        a.subject.endswith("(application:billing)") or a.subject == "application:billing" for a in synthesised
    )


def test_plans_that_do_not_fit_the_environment_or_inventory_are_refused(
    env: Environment, documents: dict[str, bytes], env_files: EnvFiles
) -> None:
    inventory = same_shaped(env)
    plan = generate_plan(env, inventory, "basic", "demo-set")
    ghost = dataclasses.replace(plan.placements[0], vm_id="vm-ghost", name="ghost")
    wrong = dataclasses.replace(plan.placements[1], component="application:ghost")
    bad = dataclasses.replace(
        plan,
        placements=(wrong, *plan.placements[2:], ghost),
        nodes=tuple(dataclasses.replace(n, name="nowhere") if n.role == "compute" else n for n in plan.nodes),
        pools=tuple(dataclasses.replace(p, name="elsewhere") if p.name == "bulk" else p for p in plan.pools),
    )
    with pytest.raises(LayoutError) as caught:
        target_layout(env, documents, bad, inventory, env_files=env_files)
    message = str(caught.value)
    assert "placement of VM ghost (vm-ghost): no such VM in the environment" in message
    assert (
        f"VM {plan.placements[0].name} ({plan.placements[0].component}): the plan places it nowhere"
        in message
    )
    assert (
        f"placement of VM {wrong.name}: it runs {plan.placements[1].component}, not application:ghost"
        in message
    )
    assert "plan node nowhere: not in the inventory" in message
    assert "plan storage pool elsewhere: not in the inventory" in message
    assert "unknown storage pool bulk" in message

    missing = {k: v for k, v in documents.items() if k != "directors/dir-2/config.yaml"}
    with pytest.raises(LayoutError, match=r"directors/dir-2/config\.yaml: not among the documents given"):
        target_layout(env, missing, plan, inventory, env_files=env_files)

    outside = dataclasses.replace(
        plan,
        paths=tuple(
            dataclasses.replace(p, new_path="file:///srv/omni/storage/fast/../../etc")
            if p.subject == "volume:billing/pgdata"
            else p
            for p in plan.paths
        ),
    )
    with pytest.raises(
        LayoutError, match=r"volume:billing/pgdata: file:///srv/omni/storage/fast/\.\./\.\./etc lies"
    ):
        target_layout(env, documents, outside, inventory, env_files=env_files)


def test_a_volume_with_symlinks_must_stay_where_the_driver_makes_links(
    env: Environment, documents: dict[str, bytes], env_files: EnvFiles
) -> None:
    inventory = same_shaped(env)
    plan = generate_plan(env, inventory, "basic", "demo-set")
    link = next(rel for rel, kind, _ in env_files if kind == "symlink")
    app, vol = link.split("/")[1:3]
    subject = f"volume:{app}/{vol}"
    pools = {p.name: p.root for p in plan.pools}
    moved = dataclasses.replace(
        plan,
        paths=tuple(
            dataclasses.replace(p, new_path=f"{pools[p.pool]}/elsewhere/{vol}") if p.subject == subject else p
            for p in plan.paths
        ),
    )
    with pytest.raises(
        LayoutError, match=rf"{link}: a symlink is restored only under volumes/{app}/{vol}/files/"
    ):
        target_layout(env, documents, moved, inventory, env_files=env_files)
    without_links = [
        e for e in env_files if not (e[0].startswith(f"volumes/{app}/{vol}/") and e[1] == "symlink")
    ]
    layout = target_layout(env, documents, moved, inventory, env_files=without_links)
    root, files = layout.volume_roots[subject]
    assert files == f"elsewhere/{vol}/files"
    assert any(f.root == root and f.relpath.startswith(f"elsewhere/{vol}/files/") for f in layout.files)
    volume = yaml.safe_load(
        next(f for f in layout.files if f.relpath == f"volumes/{app}/{vol}/volume.yaml").content or b""
    )
    assert (
        volume["source_path"]
        == f"{pools[next(p.pool for p in plan.paths if p.subject == subject)]}/elsewhere/{vol}"
    )
    assert any(a.kind == "storage-path" and a.reason == EDITED_REASON for a in layout.adaptations_applied)


def test_an_application_that_runs_on_no_vm_goes_with_its_orchestrator(
    env: Environment, documents: dict[str, bytes], env_files: EnvFiles
) -> None:
    app = env.applications[0]
    without = dataclasses.replace(
        env, vms=tuple(vm for vm in env.vms if vm.owner != f"application:{app.name}")
    )
    inventory = same_shaped(without)
    plan = generate_plan(without, inventory, "basic", "demo-20261124t0200z")
    layout = target_layout(without, documents, plan, inventory, env_files=env_files)
    orchestrator_vm = next(vm for vm in without.vms if vm.owner == f"orchestrator:{app.orchestrator}")
    node = next(p.node for p in plan.placements if p.vm_id == orchestrator_vm.vm_id)
    (placed,) = [f for f in layout.files if f.relpath == f"applications/{app.name}/app.yaml"]
    assert placed.root == node_root(node) and placed.content is None, "copied unchanged"
    volume_files = [f for f in layout.files if f.origin and f.origin.startswith(f"volumes/{app.name}/")]
    assert any(f.relpath.endswith("volume.yaml") and f.root == node_root(node) for f in volume_files)


def test_no_backed_up_file_takes_a_path_of_the_certificates_issued_at_restore(
    case: Case, env_files: EnvFiles, documents: dict[str, bytes]
) -> None:
    """A backup of an environment restored before holds keys/old-ca.crt and its nodes' own
    certificates: none of them may land where the new CA or a new node's certificate goes."""
    issued = issued_paths(n.name for n in case.plan.nodes)
    node = case.plan.nodes[0].name
    earlier = [(f"keys/{node}.crt", "file", 0o100644), (f"keys/{node}.key", "file", 0o100600)]
    extra = [(OLD_CA_CERT, "file", 0o100644), *earlier, ("keys/other.crt", "file", 0o100644)]
    layout = target_layout(case.env, documents, case.plan, case.inventory, env_files=env_files + extra)
    placed = {f.relpath for f in layout.files}
    assert not placed & (issued - {OLD_CA_CERT}), placed & issued
    assert {f.origin for f in layout.files if f.relpath == OLD_CA_CERT} == {"keys/ca.crt"}
    assert "keys/other.crt" in placed
    assert {rel for rel, _ in layout.dropped} >= {OLD_CA_CERT, f"keys/{node}.crt", f"keys/{node}.key"}
