"""The demo environment: determinism, consistency invariants, sizes, options and atomic writing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from omni_recovery.envstate.demo import (
    CORE_SERVICES,
    MAX_APPLICATIONS,
    MAX_NODES,
    SERVICES,
    DemoOptions,
    DemoOptionsError,
    write_demo_environment,
)
from omni_recovery.envstate.demo.options import FIRST_SERVICE_HOST, services_network
from omni_recovery.errors import EnvironmentStateError, RecoveryError

MiB = 1024 * 1024


def tree_digest(root: Path) -> str:
    """Hash of every entry under root: path, type, mode, mtime, and content or symlink target."""
    digest = hashlib.sha256()
    for folder, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(folder, name)
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            digest.update(f"{rel}\0{st.st_mode:o}\0{int(st.st_mtime)}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                digest.update(os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def env(tiny_demo_root: Path) -> Path:
    return tiny_demo_root


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


# -- determinism ------------------------------------------------------------------------


def test_same_seed_gives_a_byte_identical_tree(tmp_path: Path, env: Path) -> None:
    again = tmp_path / "again"
    write_demo_environment(again, DemoOptions(volume_scale="tiny"))
    assert tree_digest(again) == tree_digest(env)


# Digests of trees written by the generator before it was split into modules: a refactoring that
# changes one byte, mode, mtime or name fails here. Update them only for a deliberate change of the
# demo (or when a PyYAML or zlib upgrade changes their output), saying so in the commit.
KNOWN_TREES = {
    "default tiny": (
        DemoOptions(volume_scale="tiny"),
        "dfe953b5a8a0bc1f31e6970a36a841479c50a60f06bbadf310e69433b38d18d3",
    ),
    "seed 7, 30 applications": (
        DemoOptions(nodes=8, directors=4, orchestrators=2, applications=30, volume_scale="tiny", seed=7),
        "ec4236700319e3a98e76104a5af2af2b213b34236d590638e9f7a6efc1c116ce",
    ),
}


@pytest.mark.parametrize("case", sorted(KNOWN_TREES))
def test_known_seeds_give_the_known_bytes(tmp_path: Path, case: str) -> None:
    options, expected = KNOWN_TREES[case]
    write_demo_environment(tmp_path / "env", options)
    assert tree_digest(tmp_path / "env") == expected


def test_other_seed_gives_another_tree(tmp_path: Path, env: Path) -> None:
    other = tmp_path / "other"
    write_demo_environment(other, DemoOptions(volume_scale="tiny", seed=43))
    assert tree_digest(other) != tree_digest(env)
    assert (other / "keys/ca.key").read_bytes() != (env / "keys/ca.key").read_bytes()


# -- consistency ------------------------------------------------------------------------


def test_addresses_are_in_their_subnets_and_unique(env: Path) -> None:
    subnets = {
        name: IPv4Network(spec["cidr"])
        for name, spec in load_yaml(env / "network/subnets.yaml")["subnets"].items()
    }
    by_vlan = {10: "management", 20: "services", 30: "storage"}
    seen: dict[str, str] = {}

    def claim(ip: str, owner: str) -> None:
        assert ip not in seen, f"{ip} used by {seen.get(ip)} and {owner}"
        seen[ip] = owner

    for path in sorted((env / "nodes").iterdir()):
        node = load_yaml(path)
        for nic in node["nics"]:
            subnet = subnets[by_vlan[nic["vlan"]]]
            assert IPv4Address(nic["ip"]) in subnet
            assert nic["prefix"] == subnet.prefixlen
            if nic["gateway"]:
                assert IPv4Address(nic["gateway"]) in subnet
            claim(nic["ip"], f"{node['hostname']}/{nic['name']}")
        macs = [nic["mac"] for nic in node["nics"]]
        assert len(set(macs)) == len(macs)
    for director in sorted((env / "directors").iterdir()):
        for vm in load_json(director / "state.json")["vms"]:
            for net in vm["networks"]:
                assert IPv4Address(net["ip"]) in subnets[net["subnet"]]
                assert IPv4Address(net["ip"]) not in (subnets[net["subnet"]].network_address + 1,)
                claim(net["ip"], vm["vm_id"])
    assert len(seen) > 30


def test_references_resolve(env: Path) -> None:
    nodes = {load_yaml(p)["hostname"]: load_yaml(p) for p in (env / "nodes").iterdir()}
    vms: dict[str, tuple[str, dict[str, Any]]] = {}
    addresses: dict[str, str] = {}
    directors = sorted(p.name for p in (env / "directors").iterdir())
    assert len({load_yaml(env / "directors" / d / "config.yaml")["ring_id"] for d in directors}) == 1
    for did in directors:
        config = load_yaml(env / "directors" / did / "config.yaml")
        assert config["director_id"] == did
        node = nodes[config["node"]]
        assert node["role"] == "director"
        assert load_yaml(env / "directors" / did / "hardware.yaml") == node
        assert config["addresses"]["management"] == node["nics"][0]["ip"]
        assert set(config["ring_peers"]) == set(directors) - {did}
        assert all(path.startswith("/var/lib/omni/") for path in config["storage_paths"].values())
        addresses[f"director:{did}"] = config["addresses"]["management"]
        state = load_json(env / "directors" / did / "state.json")
        for vm in state["vms"]:
            assert vm["vm_id"] not in vms
            vms[vm["vm_id"]] = (did, vm)
        assert state["history"] == sorted(state["history"], key=lambda e: e["at"])
    orchestrators = sorted(p.name for p in (env / "orchestrators").iterdir())
    for oid in orchestrators:
        config = load_yaml(env / "orchestrators" / oid / "config.yaml")
        host, vm = vms[config["vm_id"]]
        assert vm["role"] == "orchestrator"
        assert host == config["director"]
        assert config["address"] == vm["networks"][0]["ip"]
        assert set(config["peers"]) == set(orchestrators) - {oid}
        addresses[f"orchestrator:{oid}"] = config["address"]
    services = sorted(p.name for p in (env / "services").iterdir())
    assert services == sorted(CORE_SERVICES)
    for name in services:
        service = load_yaml(env / "services" / name / "service.yaml")
        assert service["category"] == ("storage" if name == "storage" else "core")
        assert vms[service["vm"]][1]["role"] == "service"
        assert set(service["depends_on"]) <= set(services)
        addresses[f"service:{name}"] = vms[service["vm"]][1]["networks"][0]["ip"]
    environment = load_yaml(env / "environment.yaml")
    assert environment["dns"]["servers"] == [addresses["service:dns"]]
    apps = sorted(p.name for p in (env / "applications").iterdir())
    for name in apps:
        app = load_yaml(env / "applications" / name / "app.yaml")
        assert app["name"] == name
        assert app["orchestrator"] in orchestrators
        assert app["priority"] in ("critical", "standard", "low")
        assert vms[app["vm"]][1]["role"] == "app"
        addresses[f"application:{name}"] = vms[app["vm"]][1]["networks"][0]["ip"]
        for dep in app["depends_on"]:
            assert dep["app"] in apps and dep["app"] != name
            assert dep["strength"] in ("hard", "soft")
        secrets = load_json(env / "applications" / name / "secrets.json")["secrets"]
        for container in app["containers"]:
            assert set(container["secret_refs"]) <= set(secrets)
        volume_dirs = (
            sorted(p.name for p in (env / "volumes" / name).iterdir())
            if (env / "volumes" / name).exists()
            else []
        )
        assert sorted(v["name"] for v in app["volumes"]) == volume_dirs
        for vol in volume_dirs:
            spec = load_yaml(env / "volumes" / name / vol / "volume.yaml")
            assert spec["app"] == name and spec["name"] == vol
            assert spec["source_path"].startswith("/")
            assert spec["storage_class"] in ("ssd", "hdd")
            assert (env / "volumes" / name / vol / "files").is_dir()
    assert sorted(p.name for p in (env / "volumes").iterdir()) == sorted(
        a for a in apps if load_yaml(env / "applications" / a / "app.yaml")["volumes"]
    )
    # every VM belongs to something
    roles = sorted(vm["role"] for _, vm in vms.values())
    assert roles.count("orchestrator") == len(orchestrators)
    assert roles.count("service") == len(services)
    assert roles.count("app") == len(apps)
    # DNS
    dns = load_yaml(env / "network/dns.yaml")
    assert dns["zone"] == environment["domain"]
    records = {r["component"]: r for r in dns["records"]}
    assert set(records) == set(addresses)
    for component, record in records.items():
        assert record["address"] == addresses[component]
        assert record["name"].endswith("." + environment["domain"])
    # connectivity and policies name existing things
    for link in load_yaml(env / "network/connectivity.yaml")["links"]:
        assert link["from"] in addresses and link["to"] in addresses
        assert link["ports"]
    for policy in load_yaml(env / "network/policies.yaml")["policies"]:
        for side in (policy["from"], policy["to"]):
            if "app" in side:
                assert side["app"] in apps
            if "subnet" in side:
                assert side["subnet"] in ("management", "services", "storage")


def test_dependencies_form_a_dag_and_respect_priorities(env: Path) -> None:
    edges: dict[str, list[str]] = {}
    priority: dict[str, str] = {}
    for path in (env / "applications").iterdir():
        app = load_yaml(path / "app.yaml")
        priority[app["name"]] = app["priority"]
        edges[f"application:{app['name']}"] = [f"application:{d['app']}" for d in app["depends_on"]]
    for path in (env / "services").iterdir():
        service = load_yaml(path / "service.yaml")
        edges[f"service:{service['name']}"] = [f"service:{d}" for d in service["depends_on"]]
    rank = {"critical": 0, "standard": 1, "low": 2}
    for path in (env / "applications").iterdir():
        app = load_yaml(path / "app.yaml")
        for dep in app["depends_on"]:
            if dep["strength"] == "hard":  # a hard dependency is never on a less important app
                assert rank[priority[dep["app"]]] <= rank[app["priority"]]
    done: set[str] = set()
    visiting: set[str] = set()

    def visit(node: str) -> None:
        assert node not in visiting, f"cycle through {node}"
        if node in done:
            return
        visiting.add(node)
        for nxt in edges.get(node, []):
            visit(nxt)
        visiting.discard(node)
        done.add(node)

    for node in edges:
        visit(node)
    assert any(edges.values())
    assert set(priority.values()) == {"critical", "standard", "low"}
    strengths = {
        d["strength"]
        for p in (env / "applications").iterdir()
        for d in load_yaml(p / "app.yaml")["depends_on"]
    }
    assert strengths == {"hard", "soft"}


def test_orchestrator_tables_match_their_schema(env: Path) -> None:
    for orch in (env / "orchestrators").iterdir():
        schema = load_json(orch / "db/schema.json")["tables"]
        assert set(schema) == {"users", "roles", "permissions", "app_definitions", "cluster_policies"}
        for table, spec in schema.items():
            rows = [json.loads(line) for line in (orch / "db" / f"{table}.jsonl").read_text().splitlines()]
            assert rows, table
            for row in rows:
                assert list(row) == list(spec["columns"])
        users = (orch / "db/users.jsonl").read_text().splitlines()
        assert 10 <= len(users) <= 1000
        assert all(json.loads(u)["password_hash"].startswith("$scrypt$") for u in users)
        assert len((orch / "db/permissions.jsonl").read_text().splitlines()) >= 40


def test_keys_are_a_real_deterministic_ca(env: Path) -> None:
    cert = x509.load_pem_x509_certificate((env / "keys/ca.crt").read_bytes())
    key = serialization.load_pem_private_key((env / "keys/ca.key").read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    public = cert.public_key()
    assert isinstance(public, Ed25519PublicKey)
    raw = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert public.public_bytes(*raw) == key.public_key().public_bytes(*raw)
    assert cert.issuer == cert.subject
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    public.verify(cert.signature, cert.tbs_certificate_bytes)
    recovery = load_yaml(env / "recovery/recovery_metadata.yaml")
    point = datetime.strptime(recovery["recovery_point"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert cert.not_valid_before_utc < point < cert.not_valid_after_utc
    assert recovery["phase_hints"]
    assert isinstance(
        serialization.load_pem_private_key((env / "keys/service-accounts.key").read_bytes(), password=None),
        Ed25519PrivateKey,
    )
    for secret in ("keys/ca.key", "keys/service-accounts.key"):
        assert stat.S_IMODE((env / secret).stat().st_mode) == 0o600


def test_volume_trees_are_realistic(env: Path) -> None:
    pgdata = env / "volumes/billing/pgdata/files"
    for empty in ("pg_tblspc", "pg_replslot", "pg_wal/archive_status"):
        assert (pgdata / empty).is_dir() and not any((pgdata / empty).iterdir())
    assert (pgdata / "PG_VERSION").read_text() == "16\n"
    assert stat.S_IMODE(pgdata.stat().st_mode) == 0o700
    relations = [p for p in (pgdata / "base").rglob("*") if p.is_file() and p.name.isdigit()]
    assert relations and all(p.stat().st_size % 8192 == 0 for p in relations)
    links = [p for p in (env / "volumes").rglob("*") if p.is_symlink()]
    assert links
    for link in links:
        target = os.readlink(link)
        assert not target.startswith("/")
        files_root = Path(*link.relative_to(env).parts[:4])
        resolved = (link.parent / target).resolve()
        assert resolved.is_relative_to((env / files_root).resolve())
        assert resolved.exists()
    assert any(p.name.startswith("Übersicht") for p in (env / "volumes").rglob("*"))


# -- sizes, summary and progress --------------------------------------------------------


def _regular_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def test_tiny_summary_matches_the_disk(tmp_path: Path) -> None:
    written: list[int] = []
    summary = write_demo_environment(
        tmp_path / "env", DemoOptions(volume_scale="tiny", seed=5), written.append
    )
    files = _regular_files(tmp_path / "env")
    assert summary.files == len(files)
    assert summary.total_bytes == sum(p.stat().st_size for p in files) == sum(written)
    assert summary.volume_bytes == sum(p.stat().st_size for p in files if "volumes" in p.parts)
    assert 1 * MiB <= summary.total_bytes <= 2 * MiB
    assert (summary.nodes, summary.directors, summary.orchestrators, summary.applications) == (5, 3, 3, 12)
    assert summary.services == 7
    assert summary.vms == 3 + 7 + 12
    assert summary.volumes == sum(1 for _ in (tmp_path / "env/volumes").glob("*/*"))
    assert summary.symlinks == sum(1 for p in (tmp_path / "env").rglob("*") if p.is_symlink())
    assert summary.largest_file_bytes == max(p.stat().st_size for p in files)
    assert max(written) <= MiB


def test_small_scale_is_about_20_mib(tmp_path: Path) -> None:
    summary = write_demo_environment(tmp_path / "env", DemoOptions())
    assert 16 * MiB <= summary.total_bytes <= 26 * MiB
    assert summary.files > 1000


def test_big_file_is_streamed_in_blocks(tmp_path: Path) -> None:
    blocks: list[int] = []
    big = 3 * MiB + 12345
    summary = write_demo_environment(
        tmp_path / "env", DemoOptions(volume_scale="tiny", applications=3, big_file_bytes=big), blocks.append
    )
    assert summary.largest_file_bytes == big
    found = [p for p in _regular_files(tmp_path / "env") if p.stat().st_size == big]
    assert len(found) == 1
    assert found[0].relative_to(tmp_path / "env").parts[0] == "volumes"
    assert max(blocks) <= MiB


def test_more_applications_than_the_catalog(tmp_path: Path) -> None:
    summary = write_demo_environment(
        tmp_path / "env",
        DemoOptions(volume_scale="tiny", nodes=2, directors=1, orchestrators=1, applications=30),
    )
    names = sorted(p.name for p in (tmp_path / "env/applications").iterdir())
    assert len(names) == len(set(names)) == 30 == summary.applications
    assert not (tmp_path / "env/nodes").joinpath("demo-node-03.yaml").exists()


def test_volumes_per_node_gives_the_seed_s_forty_volumes_a_node_spread_over_the_applications(
    tmp_path: Path,
) -> None:
    options = DemoOptions(volume_scale="tiny", nodes=3, directors=1, applications=30, volumes_per_node=40)
    summary = write_demo_environment(tmp_path / "env", options)
    per_app = [len(list(app.iterdir())) for app in (tmp_path / "env/volumes").iterdir()]
    assert summary.volumes == sum(per_app) == 120 and len(per_app) == 30
    assert min(per_app) >= 3, "the 120 volumes spread evenly: 4 an application"
    shards = list((tmp_path / "env/volumes").glob("*/shard-*/volume.yaml"))
    assert shards and all("/srv/" in p.read_text() for p in shards)
    default_options = dataclasses.replace(options, volumes_per_node=None)
    default = write_demo_environment(tmp_path / "default", default_options)
    assert default.volumes < 60 and not list((tmp_path / "default/volumes").glob("*/shard-*"))


def test_a_demo_of_ten_applications_a_node_at_the_most_nodes_has_room_for_every_vm() -> None:
    """Up to the VMs SERVICES holds a demo keeps it (and so its addresses); one VM more, and the
    services subnet is one that holds the VMs of MAX_APPLICATIONS, 10 a node at MAX_NODES."""
    assert MAX_APPLICATIONS >= 10 * MAX_NODES
    fitting = SERVICES.num_addresses - 2 - FIRST_SERVICE_HOST - 3 - len(CORE_SERVICES)
    assert services_network(DemoOptions(applications=fitting)) == SERVICES
    wider = services_network(DemoOptions(applications=fitting + 1))
    assert wider != SERVICES and not wider.overlaps(SERVICES)
    most = DemoOptions(nodes=MAX_NODES, directors=32, orchestrators=32, applications=MAX_APPLICATIONS)
    most.validate()
    vms = most.orchestrators + len(CORE_SERVICES) + most.applications
    assert services_network(most) == wider and FIRST_SERVICE_HOST + vms < wider.num_addresses - 1


# -- options and folder handling --------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (DemoOptions(nodes=2, directors=3), "directors=3 must not exceed nodes=2"),
        (DemoOptions(orchestrators=0), "orchestrators=0"),
        (DemoOptions(applications=0), "applications=0"),
        (DemoOptions(nodes=0, directors=0), "nodes=0"),
        (DemoOptions(directors=0), "directors=0"),
        (DemoOptions(volume_scale="huge"), "volume_scale='huge'"),
        (DemoOptions(name="Prod EU"), "name='Prod EU'"),
        (DemoOptions(name=""), "name=''"),
        (DemoOptions(big_file_bytes=0), "big_file_bytes=0"),
        (DemoOptions(nodes=True), "nodes must be a whole number"),
        (DemoOptions(applications=10_000), "applications=10000"),
        (DemoOptions(volumes_per_node=0), "volumes_per_node=0"),
    ],
)
def test_options_are_validated(tmp_path: Path, options: DemoOptions, message: str) -> None:
    with pytest.raises(DemoOptionsError) as info:
        write_demo_environment(tmp_path / "env", options)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, RecoveryError)
    assert not (tmp_path / "env").exists()


def test_refuses_a_non_empty_root(tmp_path: Path) -> None:
    root = tmp_path / "env"
    root.mkdir()
    (root / "keep.txt").write_text("mine")
    with pytest.raises(EnvironmentStateError, match="not empty"):
        write_demo_environment(root, DemoOptions(volume_scale="tiny"))
    assert [p.name for p in root.iterdir()] == ["keep.txt"]


def test_refuses_a_file_root(tmp_path: Path) -> None:
    (tmp_path / "env").write_text("x")
    with pytest.raises(EnvironmentStateError, match="not a folder"):
        write_demo_environment(tmp_path / "env", DemoOptions(volume_scale="tiny"))


def test_fills_an_existing_empty_root(tmp_path: Path) -> None:
    root = tmp_path / "env"
    root.mkdir()
    write_demo_environment(root, DemoOptions(volume_scale="tiny", applications=2))
    assert (root / "environment.yaml").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["env"]


def test_a_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    seen = 0

    def explode(size: int) -> None:
        nonlocal seen
        seen += size
        if seen > 200_000:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_demo_environment(tmp_path / "env", DemoOptions(volume_scale="tiny"), explode)
    assert list(tmp_path.iterdir()) == []
