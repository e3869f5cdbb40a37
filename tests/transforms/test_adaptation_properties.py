"""Property tests of the adaptation and the plan over generated environments and inventories.

For every generated pair, either the adaptation refuses with an AdaptationError saying what does
not fit (and by how much), or the plan it makes holds: every VM placed exactly once, no node or
pool capacity exceeded, every address inside its new subnet and unique, no path outside a storage
root, the steps acyclic and in phase order, hard dependencies before their dependents, scaling
within bounds with critical applications kept whole first — and the plan survives a YAML round trip.
"""

from __future__ import annotations

import ipaddress
import math
import posixpath

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omni_recovery.adapt.inventory import (
    Inventory,
    InventoryDisk,
    InventoryNetwork,
    InventoryNic,
    InventoryNode,
    StoragePool,
)
from omni_recovery.backupset.index_db import Component, Dependency
from tests.builders import reachable
from transforms.adapt.vocabulary import AdaptationError, AdaptationPolicy
from transforms.documents import (
    VM,
    Application,
    Container,
    Director,
    DnsRecord,
    Environment,
    Network,
    Node,
    Orchestrator,
    Route,
    Service,
    Subnet,
    VmNetwork,
    Volume,
    app_vm_size,
)
from transforms.plan import PHASE_INDEX, Plan, generate_plan, plan_from_yaml, plan_to_yaml

PRIORITIES = ("critical", "standard", "low")
MANAGEMENT = ipaddress.IPv4Network("10.0.0.0/24")
SERVICES = ipaddress.IPv4Network("10.0.8.0/22")
STORAGE = ipaddress.IPv4Network("10.0.16.0/24")


@st.composite
def environments(draw: st.DrawFn) -> Environment:
    n_dirs = draw(st.integers(1, 4))
    nodes, directors = [], []
    for i in range(n_dirs):
        name = f"old-{i}"
        nodes.append(
            Node(
                name,
                "director",
                draw(st.sampled_from((16, 24, 32, 48))),
                draw(st.sampled_from((65536, 131072, 262144))),
                4000,
            )
        )
        directors.append(
            Director(
                f"dir-{i}",
                "ring-1",
                name,
                (("management", str(MANAGEMENT.network_address + 11 + i)), ("storage", str(STORAGE[11 + i]))),
                (("images", "/var/lib/omni/images"), ("state", "/var/lib/omni/state")),
                draw(st.integers(1, 4)),
                draw(st.sampled_from((4096, 8192))),
            )
        )
    vms: list[VM] = []
    components = [
        Component(f"director:{d.director_id}", "director", d.director_id, None, None, "d") for d in directors
    ]
    deps: list[Dependency] = []
    next_ip = [10]

    def vm(role: str, owner: str, cpu: int, memory: int, disk: int) -> VM:
        vm_id = f"vm-{len(vms)}"
        ip = str(SERVICES.network_address + next_ip[0])
        next_ip[0] += 1
        made = VM(
            vm_id,
            f"{role}-{len(vms)}",
            role,
            cpu,
            memory,
            disk,
            draw(st.sampled_from([d.director_id for d in directors])),
            owner,
            (VmNetwork("services", ip),),
        )
        vms.append(made)
        return made

    orchestrators = []
    for k in range(draw(st.integers(1, 3))):
        made = vm("orchestrator", f"orchestrator:orch-{k}", 4, 8192, 100)
        orchestrators.append(
            Orchestrator(f"orch-{k}", "cluster-1", made.vm_id, made.director, made.networks[0].ip)
        )
        components.append(Component(f"orchestrator:orch-{k}", "orchestrator", f"orch-{k}", None, None, "o"))
        deps.append(Dependency(f"orchestrator:orch-{k}", f"director:{made.director}", "hard"))
    services = [
        Service("storage", "storage", "storage", vm("service", "service:storage", 4, 8192, 100).vm_id)
    ]
    components.append(Component("service:storage", "service", "storage", None, None, "a"))
    for name in draw(st.lists(st.sampled_from(("auth", "dns", "monitoring")), unique=True, max_size=3)):
        made = vm("service", f"service:{name}", 2, 4096, 50)
        services.append(Service(name, "core", name, made.vm_id))
        components.append(Component(f"service:{name}", "service", name, None, None, "a"))
        deps.append(Dependency(f"service:{name}", "service:storage", "hard"))
    applications: list[Application] = []
    volumes: list[Volume] = []
    for a in range(draw(st.integers(1, 10))):
        name = f"app-{a}"
        containers = tuple(
            Container(
                f"c{c}",
                draw(st.sampled_from((0.5, 1.0, 2.0))),
                draw(st.sampled_from((512, 1024, 4096))),
                draw(st.integers(1, 3)),
            )
            for c in range(draw(st.integers(1, 3)))
        )
        cpu, memory = app_vm_size(containers)
        made = vm("app", f"application:{name}", cpu, memory, 20)
        priority = draw(st.sampled_from(PRIORITIES))
        orch = draw(st.sampled_from(orchestrators)).orchestrator_id
        earlier = [x.name for x in applications]
        app_deps = tuple(
            (other, draw(st.sampled_from(("hard", "soft"))))
            for other in draw(
                st.lists(st.sampled_from(earlier), unique=True, max_size=2) if earlier else st.just([])
            )
        )
        vols = tuple(f"v{v}" for v in range(draw(st.integers(0, 2))))
        applications.append(Application(name, priority, orch, made.vm_id, containers, vols, app_deps))
        components.append(Component(f"application:{name}", "application", name, None, priority, "a"))
        deps.append(Dependency(f"application:{name}", f"orchestrator:{orch}", "hard"))
        deps.extend(Dependency(f"application:{name}", f"application:{o}", s) for o, s in app_deps)
        for v in vols:
            volumes.append(
                Volume(
                    name,
                    v,
                    float(draw(st.integers(1, 60))),
                    draw(st.sampled_from(("ssd", "hdd"))),
                    f"/data/{v}",
                    f"/var/lib/omni/volumes/{name}/{v}",
                )
            )
            components.append(Component(f"volume:{name}/{v}", "volume", f"{name}/{v}", None, None, "v"))
            deps.append(Dependency(f"application:{name}", f"volume:{name}/{v}", "hard"))
    records = tuple(DnsRecord(f"{v.name}.example", "A", v.networks[0].ip, v.owner) for v in vms) + tuple(
        DnsRecord(f"{d.director_id}.example", "A", d.addresses[0][1], f"director:{d.director_id}")
        for d in directors
    )
    network = Network(
        subnets=(
            Subnet("management", str(MANAGEMENT), str(MANAGEMENT[1])),
            Subnet("services", str(SERVICES), str(SERVICES[1])),
            Subnet("storage", str(STORAGE), None),
        ),
        routes=(
            Route("0.0.0.0/0", str(MANAGEMENT[1]), "management", 100),
            Route(str(SERVICES), str(MANAGEMENT[1]), "management", 10),
        ),
        records=records,
        dns_servers=(records[0].address,),
    )
    return Environment(
        "generated",
        tuple(nodes),
        tuple(directors),
        tuple(vms),
        tuple(orchestrators),
        tuple(services),
        tuple(applications),
        tuple(volumes),
        network,
        tuple(components),
        tuple(deps),
    )


@st.composite
def inventories(draw: st.DrawFn, directors: int) -> Inventory:
    count = draw(st.integers(directors, directors + 3))
    nodes = tuple(
        InventoryNode(
            f"new-{i}",
            f"file:///srv/t/new-{i}",
            draw(st.sampled_from((8, 16, 32, 64, 96))),
            draw(st.sampled_from((32768, 65536, 131072, 524288))),
            (InventoryDisk("nvme0n1", draw(st.sampled_from((500, 2000, 8000)))),),
            (InventoryNic("eth0", f"52:54:00:00:{i:02x}:01"),),
        )
        for i in range(count)
    )
    pools = tuple(
        StoragePool(
            f"pool-{i}",
            draw(st.sampled_from(("ssd", "hdd", "nvme"))),
            f"s3://bucket/pool-{i}/",
            draw(st.sampled_from((100, 400, 2000))),
        )
        for i in range(draw(st.integers(1, 3)))
    )
    management = draw(st.sampled_from(("10.20.0.0/24", "10.20.0.0/27")))
    return Inventory(
        nodes,
        InventoryNetwork(
            (
                ("management", management),
                ("services", draw(st.sampled_from(("10.20.8.0/22", "10.20.8.0/26")))),
                ("storage", "10.20.16.0/24"),
            ),
            str(ipaddress.IPv4Network(management)[1]),
            (str(ipaddress.IPv4Network(management)[2]),),
        ),
        pools,
    )


@st.composite
def pairs(draw: st.DrawFn) -> tuple[Environment, Inventory, str]:
    env = draw(environments())
    return env, draw(inventories(len(env.directors))), draw(st.sampled_from(("basic", "advanced")))


def _ancestors(plan: Plan, step_id: str) -> set[str]:
    deps = {s.id: s.depends_on for s in plan.steps}
    return reachable(deps, deps[step_id])


def check_plan(env: Environment, inventory: Inventory, plan: Plan) -> None:
    policy = plan.policy
    # every VM placed exactly once
    placed = [p.vm_id for p in plan.placements]
    assert sorted(placed) == sorted(v.vm_id for v in env.vms)
    # no node capacity exceeded (recomputed from the inventory and the Directors' reservations)
    reservation = {d.director_id: (d.reserved_cpu, d.reserved_memory_mib) for d in env.directors}
    inv = {n.name: n for n in inventory.nodes}
    director_node = {n.director: n.name for n in plan.nodes if n.director}
    assert len(set(director_node.values())) == len(env.directors)  # one node per Director
    for director, node_name in director_node.items():
        node = inv[node_name]
        mine = [p for p in plan.placements if p.director == director]
        assert all(p.node == node_name for p in mine)
        res_cpu, res_mem = reservation[director]
        assert sum(p.cpu for p in mine) <= (node.cpu_cores - res_cpu) * policy.cpu_overcommit + 1e-9
        assert sum(p.memory_mib for p in mine) <= node.memory_mib - res_mem
        assert sum(p.disk_gib for p in mine) <= node.disk_gib
    # scaling within bounds; orchestrators and services never scaled; critical kept whole first
    old = {v.vm_id: v for v in env.vms}
    for p in plan.placements:
        vm = old[p.vm_id]
        if vm.role != "app":
            assert (p.cpu, p.memory_mib) == (vm.cpu, vm.memory_mib)
            continue
        assert vm.cpu * policy.scale_min - 1e-9 <= p.cpu <= vm.cpu * policy.scale_max + 1e-9
        assert (
            vm.memory_mib * policy.scale_min - 1e-9 <= p.memory_mib <= vm.memory_mib * policy.scale_max + 1e-9
        )
    priority = {v.vm_id: env.priority_of_vm(v) for v in env.vms}
    for attr in ("cpu", "memory_mib"):
        shrunk_critical = any(
            getattr(p, attr) < getattr(old[p.vm_id], attr)
            and priority[p.vm_id] == "critical"
            and old[p.vm_id].role == "app"
            for p in plan.placements
        )
        if shrunk_critical:
            for p in plan.placements:
                if old[p.vm_id].role == "app" and priority[p.vm_id] != "critical":
                    floor = getattr(old[p.vm_id], attr) * policy.scale_min
                    step = 1 if attr == "cpu" else 64
                    assert getattr(p, attr) <= math.ceil(floor / step) * step
    # every address inside its new subnet and unique; every old address in an old subnet mapped
    nets = {s.name: ipaddress.IPv4Network(s.new) for s in plan.subnets}
    news = [a.new for a in plan.addresses]
    assert len(news) == len(set(news))
    for a in plan.addresses:
        ip = ipaddress.IPv4Address(a.new)
        assert ip in nets[a.subnet]
        assert ip not in (nets[a.subnet].network_address, nets[a.subnet].broadcast_address)
    mapped = {a.old for a in plan.addresses}
    assert all(n.ip in mapped for v in env.vms for n in v.networks)
    # no path outside a storage root, pools within capacity, classes never slower
    pools = {p.name: p for p in plan.pools}
    rank = {"hdd": 0, "ssd": 1, "nvme": 2}
    used: dict[str, float] = {}
    wanted = {v.component_id: v.storage_class for v in env.volumes}
    for path in plan.paths:
        pool = pools[path.pool]
        root = pool.root.partition("://")[2].rstrip("/")
        target = posixpath.normpath(path.new_path.partition("://")[2])
        assert path.new_path.partition("://")[0] == pool.root.partition("://")[0]
        assert target.startswith("/" + root.lstrip("/") + "/") or target.startswith(root + "/")
        assert ".." not in path.new_path.split("/")
        used[path.pool] = used.get(path.pool, 0.0) + path.size_gib
        if path.subject in wanted:
            assert rank[pool.storage_class] >= rank[wanted[path.subject]]
    assert all(used[name] <= pools[name].capacity_gib + 1e-9 for name in used)
    assert {p.subject for p in plan.paths} >= set(wanted)
    # steps acyclic, in phase order, hard dependencies before dependents
    index = {s.id: i for i, s in enumerate(plan.steps)}
    assert len(index) == len(plan.steps)
    phases = [PHASE_INDEX[s.phase] for s in plan.steps]
    assert phases == sorted(phases)
    for s in plan.steps:
        for dep in s.depends_on:
            assert index[dep] < index[s.id]  # listed order is a topological order: no cycle
            assert PHASE_INDEX[plan.step(dep).phase] <= PHASE_INDEX[s.phase]
    by_component = {s.component: s.id for s in plan.steps if s.component}
    for arc in env.dependencies:
        if arc.strength == "hard" and arc.component_id in by_component and arc.depends_on_id in by_component:
            assert by_component[arc.depends_on_id] in _ancestors(plan, by_component[arc.component_id])
    assert {c for c in by_component} <= env.component_ids()
    # the plan survives its YAML
    assert plan_from_yaml(plan_to_yaml(plan), env.component_ids(), inventory) == plan


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs())
def test_plan_properties_hold_or_adaptation_refuses_clearly(pair: tuple[Environment, Inventory, str]) -> None:
    env, inventory, mode = pair
    try:
        plan = generate_plan(env, inventory, mode, "generated-set")
    except AdaptationError as exc:
        message = str(exc)
        assert "short by" in message or "fits on no" in message, message
        return
    check_plan(env, inventory, plan)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(environments(), st.sampled_from(("basic", "advanced")))
def test_a_generous_inventory_always_fits(env: Environment, mode: str) -> None:
    inventory = Inventory(
        tuple(
            InventoryNode(
                f"big-{i}",
                f"file:///t/big-{i}",
                128,
                1 << 21,
                (InventoryDisk("d", 20000),),
                (InventoryNic("e", f"52:54:00:01:{i:02x}:01"),),
            )
            for i in range(len(env.directors))
        ),
        InventoryNetwork(
            (("management", "10.20.0.0/24"), ("services", "10.20.8.0/22"), ("storage", "10.20.16.0/24")),
            "10.20.0.1",
            (),
        ),
        (
            StoragePool("fast", "ssd", "file:///s/fast", 10000),
            StoragePool("bulk", "hdd", "file:///s/bulk", 10000),
        ),
    )
    plan = generate_plan(env, inventory, mode, "generous", AdaptationPolicy())
    check_plan(env, inventory, plan)
    if mode == "basic":  # basic keeps the original shape where it fits: nothing moves, nothing scales
        assert all(p.director == p.old_director for p in plan.placements)
        assert all((p.cpu, p.memory_mib) == (p.old_cpu, p.old_memory_mib) for p in plan.placements)
