"""The demo's plan, made before anything is written: nodes, Directors, VMs, services, applications."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from typing import Any

from omni_recovery.envstate import database_volume
from omni_recovery.envstate.demo.catalog import _APP_CATALOG, _EXTRA_APP_SHAPES, _RANK
from omni_recovery.envstate.demo.options import (
    CORE_SERVICES,
    FIRST_SERVICE_HOST,
    MANAGEMENT,
    OMNICLOUD_VERSION,
    STORAGE,
    DemoOptions,
    _Scale,
    services_network,
)
from omni_recovery.envstate.demo.writer import _derive, _rng, _Writer


class _DemoPlan:
    """The demo's state and its plan: nodes, Directors, VMs, services and applications."""

    def __init__(self, options: DemoOptions, scale: _Scale, big: int | None, writer: _Writer) -> None:
        self.o = options
        self.scale = scale
        self.big = big
        self.w = writer
        self.seed = options.seed
        self.domain = f"{options.name}.omnicloud.internal"
        rng = _rng(self.seed, "environment")
        start = datetime(2026, 1, 1, tzinfo=UTC)
        self.recovery_point = start + timedelta(seconds=rng.randrange(300 * 86400))
        self.region = rng.choice(("eu-west-1", "eu-central-1", "us-east-2", "ap-southeast-1"))
        self.zones = [f"{self.region}{z}" for z in "abc"]
        self.volume_count = 0
        self.vm_count = 0
        self._vm_ids: set[str] = set()
        self.services_subnet = services_network(options)
        self._next_service_ip = int(self.services_subnet.network_address) + FIRST_SERVICE_HOST
        self._next_storage_ip = int(STORAGE.network_address) + 230

    # -- plan ------------------------------------------------------------------------------

    def service_ip(self) -> str:
        address = IPv4Address(self._next_service_ip)
        self._next_service_ip += 1
        assert address in self.services_subnet and address != self.services_subnet.broadcast_address
        return str(address)

    def vm_id(self, rng: random.Random) -> str:
        while True:
            candidate = f"vm-{rng.getrandbits(48):012x}"
            if candidate not in self._vm_ids:
                self._vm_ids.add(candidate)
                return candidate

    def plan_nodes(self) -> None:
        rng = _rng(self.seed, "nodes")
        mac_prefix = f"3c:ec:ef:{_derive(self.seed, 'mac', 1)[0]:02x}"
        self.nodes: list[dict[str, Any]] = []
        for i in range(self.o.nodes):
            if i < self.o.directors:
                role = "director"
            else:
                role = "compute" if (i - self.o.directors) % 2 == 0 else "storage"
            if role == "director":
                cores, memory = rng.choice((32, 48)), rng.choice((131072, 262144))
                disks = self.disks(rng, 2, "nvme", 1788, "SAMSUNG MZQL21T9HCJR-00A07")
            elif role == "compute":
                cores, memory = rng.choice((64, 96, 128)), rng.choice((524288, 786432, 1048576))
                disks = self.disks(rng, 2, "nvme", 3576, "SAMSUNG MZQL23T8HCLS-00A07")
            else:
                cores, memory = rng.choice((16, 24)), rng.choice((65536, 131072))
                disks = self.disks(rng, 2, "sd", 447, "INTEL SSDSC2KB480G8") + self.disks(
                    rng, rng.choice((8, 10, 12)), "sd", 14902, "ST16000NM000J", first=2
                )
            nics = [
                {
                    "name": "eno1",
                    "mac": f"{mac_prefix}:{i:02x}:01",
                    "ip": str(MANAGEMENT.network_address + 11 + i),
                    "prefix": MANAGEMENT.prefixlen,
                    "gateway": str(MANAGEMENT.network_address + 1),
                    "vlan": 10,
                },
                {
                    "name": "eno2",
                    "mac": f"{mac_prefix}:{i:02x}:02",
                    "ip": str(STORAGE.network_address + 11 + i),
                    "prefix": STORAGE.prefixlen,
                    "gateway": None,
                    "vlan": 30,
                },
            ]
            self.nodes.append(
                {
                    "hostname": f"{self.o.name}-node-{i + 1:02d}",
                    "role": role,
                    "cpu_cores": cores,
                    "memory_mib": memory,
                    "disks": disks,
                    "nics": nics,
                }
            )
        self.directors = [f"dir-{j + 1}" for j in range(self.o.directors)]
        self.ring_id = f"{self.o.name}-ring-1"

    @staticmethod
    def disks(
        rng: random.Random, count: int, kind: str, size_gib: int, model: str, first: int = 0
    ) -> list[dict[str, Any]]:
        disks = []
        for k in range(first, first + count):
            device = f"nvme{k}n1" if kind == "nvme" else f"sd{chr(ord('a') + k)}"
            serial = "".join(rng.choice("ABCDEFGHJKLMNPRSTVWXYZ0123456789") for _ in range(14))
            disks.append({"device": device, "size_gib": size_gib, "model": model, "serial": serial})
        return disks

    def plan_vms_and_apps(self) -> None:
        rng = _rng(self.seed, "vms")
        self.vms: dict[str, list[dict[str, Any]]] = {d: [] for d in self.directors}
        slot = 0

        def place_vm(vm: dict[str, Any]) -> str:
            nonlocal slot
            director = self.directors[slot % len(self.directors)]
            slot += 1
            self.vms[director].append(vm)
            self.vm_count += 1
            return director

        image_version = OMNICLOUD_VERSION
        self.orchestrators: list[dict[str, Any]] = []
        for k in range(self.o.orchestrators):
            oid = f"orch-{k + 1}"
            vm = {
                "vm_id": self.vm_id(rng),
                "name": oid,
                "role": "orchestrator",
                "cpu": 8,
                "memory_mib": 16384,
                "disk_gib": 200,
                "image": f"omnicloud/orchestrator:{image_version}",
                "networks": [{"subnet": "services", "ip": self.service_ip()}],
            }
            director = place_vm(vm)
            self.orchestrators.append({"id": oid, "vm": vm, "director": director})
        self.services: list[dict[str, Any]] = []
        for name in CORE_SERVICES:
            networks = [{"subnet": "services", "ip": self.service_ip()}]
            if name == "storage":
                networks.append({"subnet": "storage", "ip": str(IPv4Address(self._next_storage_ip))})
                self._next_storage_ip += 1
            vm = {
                "vm_id": self.vm_id(rng),
                "name": f"svc-{name}",
                "role": "service",
                "cpu": 8 if name in ("storage", "logging") else 4,
                "memory_mib": 32768 if name in ("storage", "logging") else 8192,
                "disk_gib": 500 if name in ("storage", "logging") else 100,
                "image": f"omnicloud/{name}:{image_version}",
                "networks": networks,
            }
            director = place_vm(vm)
            self.services.append({"name": name, "vm": vm, "director": director})
        self.apps: list[dict[str, Any]] = []
        for i in range(self.o.applications):
            if self.o.database and i == self.o.applications - 1:
                name, priority, volumes = database_volume.APP
            elif i < len(_APP_CATALOG):
                name, priority, volumes = _APP_CATALOG[i]
            else:
                base = _APP_CATALOG[i % len(_APP_CATALOG)][0]
                name = f"{base}-{i // len(_APP_CATALOG) + 1}"
                priority = rng.choice(("critical", "standard", "standard", "low", "low"))
                volumes = rng.choice(_EXTRA_APP_SHAPES)
            app = self.plan_app(rng, i, name, priority, volumes + self.extra_volumes(i, len(volumes)))
            vm = {
                "vm_id": self.vm_id(rng),
                "name": f"app-{name}",
                "role": "app",
                "cpu": max(1, math.ceil(sum(c["cpu"] * c["replicas"] for c in app["containers"]))),
                "memory_mib": sum(c["memory_mib"] * c["replicas"] for c in app["containers"]) + 1024,
                "disk_gib": 50,
                "image": f"omnicloud/app-host:{image_version}",
                "networks": [{"subnet": "services", "ip": self.service_ip()}],
            }
            app["vm"] = vm
            app["director"] = place_vm(vm)
            self.apps.append(app)

    def extra_volumes(self, index: int, has: int) -> tuple[str, ...]:
        """Blob volumes added to application `index` (which has `has`) so that the applications
        hold about `volumes_per_node` × nodes volumes in all, spread evenly; none by default."""
        if self.o.volumes_per_node is None:
            return ()
        total, apps = self.o.volumes_per_node * self.o.nodes, self.o.applications
        share = (index + 1) * total // apps - index * total // apps
        return tuple(f"blobs:shard-{k}" for k in range(1, share - has + 1))

    def plan_app(
        self, rng: random.Random, index: int, name: str, priority: str, shapes: tuple[str, ...]
    ) -> dict[str, Any]:
        orchestrator = self.orchestrators[index % len(self.orchestrators)]["id"]
        volumes = []
        for shape in shapes:
            kind, _, vol = shape.partition(":")
            vol = vol or {"postgres": "pgdata", "logs": "logs", "index": "index"}[kind]
            mount = {
                "postgres": "/var/lib/postgresql/data",
                "logs": f"/var/log/{name}",
                "index": f"/var/lib/{name}/index",
                "blobs": f"/srv/{name}/{vol}",
            }[kind]
            klass = "hdd" if kind in ("logs", "blobs") and vol != "media" else "ssd"
            volumes.append({"name": vol, "kind": kind, "mount_path": mount, "storage_class": klass})
        version = f"{rng.randint(1, 6)}.{rng.randint(0, 24)}.{rng.randint(0, 9)}"
        registry = f"registry.{self.domain}/{name}"
        has_db = any(v["kind"] == "postgres" for v in volumes)
        env = {"LOG_LEVEL": "info", "SERVICE_NAME": name, "AUTH_URL": f"https://auth.services.{self.domain}"}
        if has_db:
            env |= {"DB_HOST": "127.0.0.1", "DB_PORT": "5432", "DB_NAME": name.replace("-", "_")}
        secret_refs = ["api-signing-key", *(["db-password"] if has_db else [])]
        containers: list[dict[str, Any]] = [
            {
                "name": "api",
                "image": f"{registry}/api:{version}",
                "cpu": rng.choice((0.5, 1, 2)),
                "memory_mib": rng.choice((512, 1024, 2048)),
                "replicas": rng.choice((2, 3)),
                "ports": [8080],
                "env": env,
                "secret_refs": secret_refs,
            }
        ]
        if rng.random() < 0.5:
            containers.append(
                {
                    "name": "worker",
                    "image": f"{registry}/worker:{version}",
                    "cpu": rng.choice((0.5, 1)),
                    "memory_mib": rng.choice((512, 1024)),
                    "replicas": rng.choice((1, 2)),
                    "ports": [],
                    "env": dict(env),
                    "secret_refs": list(secret_refs),
                }
            )
        if has_db:
            containers.append(
                {
                    "name": "postgres",
                    "image": "postgres:16.4",
                    "cpu": 2,
                    "memory_mib": 4096,
                    "replicas": 1,
                    "ports": [5432],
                    "env": {"PGDATA": "/var/lib/postgresql/data", "POSTGRES_DB": name.replace("-", "_")},
                    "secret_refs": ["db-password"],
                }
            )
        if any(v["kind"] == "index" for v in volumes):
            containers.append(
                {
                    "name": "opensearch",
                    "image": "opensearchproject/opensearch:2.17.1",
                    "cpu": 2,
                    "memory_mib": 8192,
                    "replicas": 1,
                    "ports": [9200],
                    "env": {"OPENSEARCH_JAVA_OPTS": "-Xms4g -Xmx4g", "discovery.type": "single-node"},
                    "secret_refs": [],
                }
            )
        depends_on = []
        if index:
            count = min(index, rng.choice((0, 1, 1, 2, 2, 3)))
            for other in sorted(rng.sample(range(index), count)):
                target = self.apps[other]
                allowed_hard = _RANK[target["priority"]] <= _RANK[priority]
                strength = "hard" if allowed_hard and rng.random() < 0.7 else "soft"
                depends_on.append({"app": target["name"], "strength": strength})
        return {
            "name": name,
            "priority": priority,
            "orchestrator": orchestrator,
            "version": version,
            "containers": containers,
            "volumes": volumes,
            "depends_on": depends_on,
        }


def _vm_ip(planned: dict[str, Any]) -> str:
    """The address of an orchestrator's, service's or application's VM on its first network."""
    ip: str = planned["vm"]["networks"][0]["ip"]
    return ip
