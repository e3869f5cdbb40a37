"""The Orchestrators: their configuration and their database tables (users, roles, applications...)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from datetime import datetime, timedelta
from typing import Any

from omni_recovery.envstate.demo.catalog import _ACTIONS, _FIRST, _LAST, _RESOURCES, _ROLES
from omni_recovery.envstate.demo.plan import _vm_ip
from omni_recovery.envstate.demo.system import _SystemWriter
from omni_recovery.envstate.demo.writer import _iso, _rng


class _OrchestratorWriter(_SystemWriter):
    """Writes each Orchestrator's configuration and its database tables."""

    # -- orchestrators ---------------------------------------------------------------------

    def write_orchestrators(self) -> None:
        ids = [o["id"] for o in self.orchestrators]
        cluster = f"{self.o.name}-cluster-1"
        for orch in self.orchestrators:
            oid = orch["id"]
            base = f"orchestrators/{oid}"
            self.w.yaml(
                f"{base}/config.yaml",
                {
                    "orchestrator_id": oid,
                    "cluster_id": cluster,
                    "vm_id": orch["vm"]["vm_id"],
                    "director": orch["director"],
                    "address": _vm_ip(orch),
                    "peers": [p for p in ids if p != oid],
                    "placement": {"strategy": "spread", "zones": list(self.zones)},
                },
            )
            tables = self.tables(oid)
            self.w.json(
                f"{base}/db/schema.json", {"tables": {n: {"columns": c} for n, (c, _) in tables.items()}}
            )
            for table, (_, rows) in tables.items():
                self.w.jsonl(f"{base}/db/{table}.jsonl", rows, 0o600 if table == "users" else 0o644)

    def tables(self, oid: str) -> dict[str, tuple[dict[str, str], list[dict[str, Any]]]]:
        rng = _rng(self.seed, f"db/{oid}")
        end = self.recovery_point
        permissions = [
            {"permission_id": f"{r}:{a}", "resource": r, "action": a, "description": f"{a} {r}"}
            for r in _RESOURCES
            for a in _ACTIONS
        ]
        roles = []
        for name, description, grants in _ROLES:
            granted = [
                p["permission_id"]
                for p in permissions
                if any(_grant(g, p["resource"], p["action"]) for g in grants)
            ]
            roles.append(
                {
                    "role_id": f"role-{name}",
                    "name": name,
                    "description": description,
                    "permission_ids": granted,
                    "builtin": name in ("admin", "viewer"),
                }
            )
        managed = [a for a in self.apps if a["orchestrator"] == oid]
        users = []
        seen: set[str] = set()
        count = max(5, self.scale.users + rng.randrange(-self.scale.users // 5, self.scale.users // 5 + 1))
        for n in range(count):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            username = f"{first}.{last}"
            while username in seen:
                username = f"{first}.{last}{rng.randrange(2, 100)}"
            seen.add(username)
            users.append(self.user(rng, username, f"{first.title()} {last.title()}", n, end))
        for app in managed:
            users.append(self.user(rng, f"svc-{app['name']}", f"{app['name']} service account", -1, end))
        app_definitions = []
        for app in managed:
            revisions = rng.randint(1, 4)
            for revision in range(1, revisions + 1):
                spec = json.dumps([app["containers"], revision], sort_keys=True).encode()
                app_definitions.append(
                    {
                        "app_id": f"app-{app['name']}",
                        "name": app["name"],
                        "revision": revision,
                        "version": app["version"] if revision == revisions else f"0.{revision}.0",
                        "priority": app["priority"],
                        "spec_sha256": hashlib.sha256(spec).hexdigest(),
                        "created_at": _iso(
                            end - timedelta(days=(revisions - revision) * 30 + rng.randrange(30))
                        ),
                        "created_by": rng.choice(users)["username"],
                        "active": revision == revisions,
                    }
                )
        policies = []
        for n in range(max(4, self.scale.policies + rng.randrange(-2, 3))):
            kind = ("quota", "placement", "security", "network", "backup")[n % 5]
            target = self.apps[rng.randrange(len(self.apps))]["name"]
            rule: dict[str, Any] = {
                "quota": {
                    "app": target,
                    "max_cpu": rng.choice((4, 8, 16)),
                    "max_memory_mib": rng.choice((8192, 16384)),
                },
                "placement": {"app": target, "anti_affinity": "zone", "zones": list(self.zones)},
                "security": {"run_as_non_root": True, "read_only_root": rng.random() < 0.5},
                "network": {"default": "deny", "allow_from": ["api-gateway"]},
                "backup": {
                    "schedule": f"0 {rng.randrange(24)} * * *",
                    "retention_days": rng.choice((7, 14, 30)),
                },
            }[kind]
            policies.append(
                {
                    "policy_id": f"pol-{n + 1:04d}",
                    "name": f"{kind}-{n + 1}",
                    "kind": kind,
                    "scope": "cluster" if kind in ("security", "network") else f"app:{target}",
                    "rule": rule,
                    "enabled": rng.random() < 0.9,
                }
            )
        return {
            "users": (
                {"user_id": "text", "username": "text", "email": "text", "display_name": "text",
                 "password_hash": "text", "roles": "json", "mfa_enabled": "boolean", "disabled": "boolean",
                 "created_at": "timestamp", "last_login": "timestamp"},
                users,
            ),
            "roles": (
                {"role_id": "text", "name": "text", "description": "text", "permission_ids": "json",
                 "builtin": "boolean"},
                roles,
            ),
            "permissions": (
                {"permission_id": "text", "resource": "text", "action": "text", "description": "text"},
                permissions,
            ),
            "app_definitions": (
                {"app_id": "text", "name": "text", "revision": "integer", "version": "text",
                 "priority": "text", "spec_sha256": "text", "created_at": "timestamp", "created_by": "text",
                 "active": "boolean"},
                app_definitions,
            ),
            "cluster_policies": (
                {"policy_id": "text", "name": "text", "kind": "text", "scope": "text", "rule": "json",
                 "enabled": "boolean"},
                policies,
            ),
        }  # fmt: skip

    def user(self, rng: random.Random, username: str, display: str, n: int, end: datetime) -> dict[str, Any]:
        salt = rng.randbytes(16)
        digest = hashlib.sha256(salt + username.encode()).digest()
        b64 = base64.b64encode
        role = "service-account" if n < 0 else ("admin" if n < 2 else rng.choice([r[0] for r in _ROLES[1:9]]))
        created = end - timedelta(seconds=rng.randrange(3 * 365 * 86400))
        login = created + timedelta(seconds=rng.randrange(max(1, int((end - created).total_seconds()))))
        return {
            "user_id": f"u-{rng.getrandbits(48):012x}",
            "username": username,
            "email": f"{username}@{self.o.name}.example.com",
            "display_name": display,
            "password_hash": f"$scrypt$ln=16,r=8,p=1${b64(salt).decode()}${b64(digest).decode()}",
            "roles": [role],
            "mfa_enabled": n >= 0 and rng.random() < 0.7,
            "disabled": n >= 2 and rng.random() < 0.05,
            "created_at": _iso(created),
            "last_login": _iso(login) if rng.random() < 0.9 else None,
        }


def _grant(grant: str, resource: str, action: str) -> bool:
    if grant == "*":
        return True
    want_resource, _, want_action = grant.partition(":")
    return want_resource in ("*", resource) and want_action in ("*", action)
