"""The core services, the applications and the network (subnets, DNS records, routes, links)."""

from __future__ import annotations

import base64
from ipaddress import IPv4Network
from typing import Any

from omni_recovery.envstate.demo.catalog import _SERVICE_DEPENDS, _SERVICE_PORTS
from omni_recovery.envstate.demo.options import MANAGEMENT, OMNICLOUD_VERSION, STORAGE
from omni_recovery.envstate.demo.orchestrators import _OrchestratorWriter
from omni_recovery.envstate.demo.plan import _vm_ip
from omni_recovery.envstate.demo.writer import _rng


class _NetworkWriter(_OrchestratorWriter):
    """Writes the core services, the applications and the network configuration."""

    # -- services and applications ---------------------------------------------------------

    def write_services(self) -> None:
        for service in self.services:
            name = service["name"]
            self.w.yaml(
                f"services/{name}/service.yaml",
                {
                    "name": name,
                    "category": "storage" if name == "storage" else "core",
                    "role": name,
                    "vm": service["vm"]["vm_id"],
                    "version": OMNICLOUD_VERSION,
                    "ports": _SERVICE_PORTS[name],
                    "depends_on": list(_SERVICE_DEPENDS[name]),
                },
            )

    def write_applications(self) -> None:
        for app in self.apps:
            name = app["name"]
            self.w.yaml(
                f"applications/{name}/app.yaml",
                {
                    "name": name,
                    "priority": app["priority"],
                    "orchestrator": app["orchestrator"],
                    "version": app["version"],
                    "vm": app["vm"]["vm_id"],
                    "containers": app["containers"],
                    "volumes": [{"name": v["name"], "mount_path": v["mount_path"]} for v in app["volumes"]],
                    "depends_on": app["depends_on"],
                },
            )
            rng = _rng(self.seed, f"secrets/{name}")
            refs = sorted({ref for c in app["containers"] for ref in c["secret_refs"]})
            secrets = {ref: base64.urlsafe_b64encode(rng.randbytes(24)).decode().rstrip("=") for ref in refs}
            secrets["tls-key-passphrase"] = base64.b64encode(rng.randbytes(18)).decode()
            self.w.json(f"applications/{name}/secrets.json", {"secrets": secrets}, 0o600)

    # -- network ---------------------------------------------------------------------------

    def write_network(self) -> None:
        gateway = {n: str(net.network_address + 1) for n, net in self.subnets().items()}
        services = str(self.services_subnet)
        self.w.yaml(
            "network/subnets.yaml",
            {
                "subnets": {
                    "management": {"cidr": str(MANAGEMENT), "gateway": gateway["management"], "vlan": 10,
                                   "purpose": "node and director management"},
                    "services": {"cidr": services, "gateway": gateway["services"], "vlan": 20,
                                 "purpose": "VMs: orchestrators, core services, applications"},
                    "storage": {"cidr": str(STORAGE), "gateway": None, "vlan": 30,
                                "purpose": "storage replication and volume traffic"},
                }
            },
        )  # fmt: skip
        self.w.yaml(
            "network/routes.yaml",
            {
                "routes": [
                    _route("0.0.0.0/0", gateway["management"], "management", 100),
                    _route("0.0.0.0/0", gateway["services"], "services", 100),
                    _route(services, gateway["management"], "management", 10),
                    _route(str(MANAGEMENT), gateway["services"], "services", 10),
                    _route("172.16.0.0/12", str(MANAGEMENT.network_address + 254), "management", 50)
                    | {"description": "operations VPN"},
                ]
            },
        )  # fmt: skip
        policies: list[dict[str, Any]] = [
            {"name": "management-to-services", "action": "allow", "from": {"subnet": "management"},
             "to": {"subnet": "services"}, "protocol": "tcp", "ports": [22, 443, 7443, 9443]},
            {"name": "services-to-storage", "action": "allow", "from": {"subnet": "services"},
             "to": {"subnet": "storage"}, "protocol": "tcp", "ports": [2049, 3260, 7480]},
            {"name": "storage-to-management", "action": "deny", "from": {"subnet": "storage"},
             "to": {"subnet": "management"}, "protocol": "any", "ports": []},
            {"name": "dns", "action": "allow", "from": {"subnet": "services"}, "to": {"service": "dns"},
             "protocol": "udp", "ports": [53]},
        ]  # fmt: skip
        for planned in self.apps:
            for dep in planned["depends_on"]:
                policies.append({"name": f"{planned['name']}-to-{dep['app']}", "action": "allow",
                                 "from": {"app": planned["name"]}, "to": {"app": dep["app"]},
                                 "protocol": "tcp", "ports": [8080]})  # fmt: skip
        self.w.yaml("network/policies.yaml", {"default_action": "deny", "policies": policies})
        records = []
        for j, did in enumerate(self.directors):
            records.append(self.record(f"{did}.directors", self.nodes[j]["nics"][0]["ip"], f"director:{did}"))
        for orch in self.orchestrators:
            records.append(
                self.record(f"{orch['id']}.orchestrators", _vm_ip(orch), f"orchestrator:{orch['id']}")
            )
        for service in self.services:
            records.append(
                self.record(f"{service['name']}.services", _vm_ip(service), f"service:{service['name']}")
            )
        for app in self.apps:
            records.append(self.record(f"{app['name']}.apps", _vm_ip(app), f"application:{app['name']}"))
        self.w.yaml(
            "network/dns.yaml",
            {"zone": self.domain, "ttl": 300, "servers": [self.dns_ip()], "records": records},
        )
        self.w.yaml("network/connectivity.yaml", {"links": self.links()})

    def subnets(self) -> dict[str, IPv4Network]:
        return {"management": MANAGEMENT, "services": self.services_subnet, "storage": STORAGE}

    def record(self, label: str, address: str, component: str) -> dict[str, Any]:
        return {"name": f"{label}.{self.domain}", "type": "A", "address": address, "component": component}

    def links(self) -> list[dict[str, Any]]:
        links: list[dict[str, Any]] = []

        def link(source: str, target: str, ports: list[int], protocol: str = "tcp") -> None:
            links.append({"from": source, "to": target, "ports": ports, "protocol": protocol})

        for did in self.directors:
            for peer in self.directors:
                if peer != did:
                    link(f"director:{did}", f"director:{peer}", [9444])
        for orch in self.orchestrators:
            link(f"orchestrator:{orch['id']}", f"director:{orch['director']}", [9443])
            for other in self.orchestrators:
                if other is not orch:
                    link(f"orchestrator:{orch['id']}", f"orchestrator:{other['id']}", [7444])
        for service in self.services:
            name = service["name"]
            if name != "storage":
                link(f"service:{name}", "service:storage", _SERVICE_PORTS["storage"])
            for dep in _SERVICE_DEPENDS[name]:
                link(f"service:{name}", f"service:{dep}", _SERVICE_PORTS[dep])
        for app in self.apps:
            cid = f"application:{app['name']}"
            link(cid, f"orchestrator:{app['orchestrator']}", [7443])
            link(cid, "service:auth", _SERVICE_PORTS["auth"])
            link(cid, "service:dns", [53], "udp")
            for dep in app["depends_on"]:
                link(cid, f"application:{dep['app']}", [8080])
        return links


def _route(destination: str, gateway: str, subnet: str, metric: int) -> dict[str, Any]:
    return {"destination": destination, "gateway": gateway, "subnet": subnet, "metric": metric}
