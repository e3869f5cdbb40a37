"""read_topology(): components, dependencies and hardware of an environment folder, and its refusals."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from omni_recovery.backupset.index_db import COMPONENT_KINDS, Dependency, read_index, write_index
from omni_recovery.envstate.demo import DemoOptions
from omni_recovery.envstate.model import place
from omni_recovery.envstate.topology import read_topology
from omni_recovery.errors import EnvironmentStateError
from tests.demo_fixtures import write_demo

SMALL = DemoOptions(nodes=4, directors=2, orchestrators=2, applications=5, volume_scale="tiny", seed=11)


@pytest.fixture(scope="module")
def default_env(tiny_demo_root: Path) -> Path:
    return tiny_demo_root


@pytest.fixture(scope="module")
def small_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo(tmp_path_factory, "topology-small", SMALL)


@pytest.fixture
def copy(small_env: Path, tmp_path: Path) -> Path:
    target = tmp_path / "env"
    shutil.copytree(small_env, target, symlinks=True)
    return target


@pytest.mark.parametrize(
    "options",
    [DemoOptions(volume_scale="tiny"), SMALL],
    ids=["default", "small"],
)
def test_counts_match_the_options(options: DemoOptions, default_env: Path, small_env: Path) -> None:
    root = small_env if options == SMALL else default_env
    index = read_topology(root)
    kinds = Counter(c.kind for c in index.components)
    assert kinds["system"] == 1 and kinds["network"] == 1
    assert kinds["director"] == options.directors
    assert kinds["orchestrator"] == options.orchestrators
    assert kinds["service"] == 7
    assert kinds["application"] == options.applications
    assert kinds["volume"] == sum(1 for _ in (root / "volumes").glob("*/*"))
    assert len(index.hardware) == options.nodes
    assert index.files == []
    assert set(kinds) <= set(COMPONENT_KINDS)


def test_components(default_env: Path) -> None:
    index = read_topology(default_env)
    by_id = {c.component_id: c for c in index.components}
    assert len(by_id) == len(index.components)
    for component in index.components:
        assert component.component_id == f"{component.kind}:{component.name}"
        if component.parent_id is not None:
            assert component.parent_id in by_id
    assert by_id["system:core"].iso_kind == place("environment.yaml").iso_kind
    assert by_id["network:config"].iso_kind == place("network/subnets.yaml").iso_kind
    director = by_id["director:dir-1"]
    assert director.attributes == {"node": "demo-node-01", "ring_id": "demo-ring-1"}
    assert director.iso_kind == "director-state"
    for oid in ("orch-1", "orch-2", "orch-3"):
        orch = by_id[f"orchestrator:{oid}"]
        config = yaml.safe_load((default_env / f"orchestrators/{oid}/config.yaml").read_text())
        assert orch.parent_id == f"director:{config['director']}"
        assert orch.attributes["vm_id"] == config["vm_id"]
        assert orch.attributes["cluster_id"] == config["cluster_id"]
        assert orch.iso_kind == "orchestrator-state"
    assert by_id["service:storage"].attributes["category"] == "storage"
    assert by_id["service:auth"].attributes["category"] == "core"
    assert by_id["service:auth"].attributes["role"] == "auth"
    assert by_id["service:auth"].iso_kind == "application-definition"
    billing = by_id["application:billing"]
    assert billing.priority == "critical"
    assert billing.parent_id and billing.parent_id.startswith("orchestrator:")
    assert billing.iso_kind == "application-definition"
    volume = by_id["volume:billing/pgdata"]
    assert volume.parent_id == "application:billing"
    assert volume.iso_kind == "volume-data"
    files = [
        p
        for p in (default_env / "volumes/billing/pgdata/files").rglob("*")
        if p.is_file() and not p.is_symlink()
    ]
    assert volume.attributes["bytes"] == sum(p.stat().st_size for p in files) > 0
    assert volume.attributes["files"] == len(files)
    assert volume.attributes["storage_class"] == "ssd"
    assert volume.attributes["mount_path"] == "/var/lib/postgresql/data"
    assert volume.attributes["size_gib"] >= 1


def test_dependencies(default_env: Path) -> None:
    index = read_topology(default_env)
    deps = {(d.component_id, d.depends_on_id): d.strength for d in index.dependencies}
    assert len(deps) == len(index.dependencies)
    ids = {c.component_id for c in index.components}
    assert all(a in ids and b in ids for a, b in deps)
    for component in index.components:
        cid = component.component_id
        if component.kind == "orchestrator":
            assert deps[(cid, str(component.parent_id))] == "hard"
        if component.kind == "service":
            if cid != "service:storage":
                assert deps[(cid, "service:storage")] == "hard"
            else:
                assert not any(a == cid for a, _ in deps)
        if component.kind == "application":
            assert deps[(cid, str(component.parent_id))] == "hard"
            assert deps[(cid, "service:auth")] == "soft"
            app = yaml.safe_load((default_env / f"applications/{component.name}/app.yaml").read_text())
            for dep in app["depends_on"]:
                assert deps[(cid, f"application:{dep['app']}")] == dep["strength"]
            for vol in app["volumes"]:
                assert deps[(cid, f"volume:{component.name}/{vol['name']}")] == "hard"
    assert deps[("service:api-gateway", "service:auth")] == "hard"


def test_hardware(default_env: Path) -> None:
    index = read_topology(default_env)
    assert [h.node_id for h in index.hardware] == [f"demo-node-{i:02d}" for i in range(1, 6)]
    assert Counter(h.role for h in index.hardware) == {"director": 3, "compute": 1, "storage": 1}
    for node in index.hardware:
        assert node.cpu_cores > 0 and node.memory_mib > 0
        assert node.disks and all({"device", "size_gib", "model", "serial"} <= set(d) for d in node.disks)
        assert node.nics and all(
            {"name", "mac", "ip", "prefix", "gateway", "vlan"} <= set(n) for n in node.nics
        )


def test_the_index_round_trips_through_sqlite(default_env: Path, tmp_path: Path) -> None:
    index = read_topology(default_env)
    write_index(tmp_path / "recovery_index.db", index)
    again = read_index(tmp_path / "recovery_index.db", iso="test.iso")
    assert again.components == index.components
    assert again.dependencies == index.dependencies
    assert again.hardware == index.hardware


def _edit_yaml(path: Path, **changes: object) -> None:
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data))


def test_missing_environment_yaml(copy: Path) -> None:
    (copy / "environment.yaml").unlink()
    with pytest.raises(EnvironmentStateError, match=r"environment\.yaml: missing"):
        read_topology(copy)


@pytest.mark.parametrize(
    ("relpath", "text", "match"),
    [
        pytest.param(
            "applications/billing/app.yaml",
            "name: billing\n  priority: [critical\n",
            r"applications/billing/app\.yaml: not valid YAML",
            id="malformed_yaml_names_the_file",
        ),
        pytest.param(
            "directors/dir-1/state.json",
            '{"vms": [',
            r"directors/dir-1/state\.json: not valid JSON",
            id="malformed_json_names_the_file",
        ),
        pytest.param(
            "services/auth/service.yaml",
            "- auth\n",
            r"services/auth/service\.yaml: the document must be a mapping",
            id="a_yaml_list_instead_of_a_mapping",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_it(copy: Path, relpath: str, text: str, match: str) -> None:
    (copy / relpath).write_text(text)
    with pytest.raises(EnvironmentStateError, match=match):
        read_topology(copy)


@pytest.mark.parametrize(
    ("relpath", "changes", "match"),
    [
        pytest.param(
            "applications/billing/app.yaml",
            {"priority": "urgent"},
            r"app\.yaml: priority must be one of",
            id="bad_priority",
        ),
        pytest.param(
            "applications/billing/app.yaml", {"orchestrator": "orch-9"}, "orch-9", id="unknown_orchestrator"
        ),
        pytest.param(
            "orchestrators/orch-1/config.yaml",
            {"vm_id": "vm-gone"},
            r"orchestrators/orch-1/config\.yaml: VM vm-gone",
            id="orchestrator_vm_missing_from_every_director",
        ),
        pytest.param(
            "applications/billing/app.yaml",
            {"depends_on": [{"app": "nowhere", "strength": "hard"}]},
            "nowhere",
            id="unknown_application_dependency",
        ),
        pytest.param(
            "directors/dir-1/config.yaml",
            {"director_id": "dir-7"},
            r"directors/dir-1/config\.yaml: director_id is 'dir-7'",
            id="folder_name_must_match",
        ),
        pytest.param(
            "nodes/demo-node-01.yaml",
            {"cpu_cores": "many"},
            r"nodes/demo-node-01\.yaml: cpu_cores",
            id="bad_hardware",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_it(
    copy: Path, relpath: str, changes: dict[str, object], match: str
) -> None:
    _edit_yaml(copy / relpath, **changes)
    with pytest.raises(EnvironmentStateError, match=match):
        read_topology(copy)


def test_dependency_cycle(copy: Path) -> None:
    _edit_yaml(copy / "applications/billing/app.yaml", depends_on=[{"app": "inventory", "strength": "soft"}])
    _edit_yaml(copy / "applications/inventory/app.yaml", depends_on=[{"app": "billing", "strength": "hard"}])
    with pytest.raises(EnvironmentStateError, match=r"dependency cycle: .*application:billing"):
        read_topology(copy)


def test_volume_of_a_missing_application(copy: Path) -> None:
    shutil.copytree(copy / "volumes/billing", copy / "volumes/ghost", symlinks=True)
    with pytest.raises(EnvironmentStateError, match="volumes/ghost"):
        read_topology(copy)


def test_duplicate_vm(copy: Path) -> None:
    state = json.loads((copy / "directors/dir-1/state.json").read_text())
    other = json.loads((copy / "directors/dir-2/state.json").read_text())
    other["vms"].append(state["vms"][0])
    (copy / "directors/dir-2/state.json").write_text(json.dumps(other))
    with pytest.raises(EnvironmentStateError, match="also defined by director"):
        read_topology(copy)


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentStateError, match="no such directory"):
        read_topology(tmp_path / "absent")


def test_each_dependency_is_recorded_once_without_comparing_it_with_every_other(
    default_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dependency declared again is recorded once, found by a lookup: comparing each new one with
    every one recorded before made reading 2,000 applications take minutes."""
    comparisons = 0
    original = Dependency.__eq__

    def counted(self: Dependency, other: object) -> bool:
        nonlocal comparisons
        comparisons += 1
        return original(self, other)

    monkeypatch.setattr(Dependency, "__eq__", counted)
    index = read_topology(default_env)
    pairs = [(d.component_id, d.depends_on_id, d.strength) for d in index.dependencies]
    assert len(pairs) > 50 and len(set(pairs)) == len(pairs)
    assert comparisons < len(pairs)
