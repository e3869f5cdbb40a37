"""The catalog's network rows: subnets, routes, policies, DNS records and connectivity links, each
document in any shape the environment reader accepts (`document_items`, `first_of`): a list, a
wrapper (`{routes: [...]}`) or a mapping keyed by name, bare values or objects, and the field names
docs/backup-format.md lists for each fact.
"""

from __future__ import annotations

from typing import Any

from omni_recovery.errors import BackupSetError
from transforms.configs.rows import Tables, mapping
from transforms.configs.schemas import json_text
from transforms.documents import document_items, first_of


def network_rows(t: Tables, sid: str, leaf: str, path: str, doc: Any) -> None:
    """Network documents in any shape the environment reader accepts (`document_items`, `first_of`)."""
    if leaf == "subnets.yaml":
        for s in document_items(doc, "subnets"):
            s = s if isinstance(s, dict) else {"cidr": s}  # a bare CIDR in a list
            t.add(
                "network_subnets",
                {
                    "backup_set_id": sid,
                    "name": s.get("name"),
                    "cidr": first_of(s, "cidr", "network", "prefix", "value"),
                    "gateway": s.get("gateway"),
                    "vlan": s.get("vlan"),
                    "purpose": s.get("purpose"),
                },
            )
    elif leaf == "routes.yaml":
        for r in _mappings_of(doc, "routes", path):
            t.add(
                "network_routes",
                {
                    "backup_set_id": sid,
                    "destination": first_of(r, "destination", "dst", "to"),
                    "gateway": first_of(r, "gateway", "via"),
                    "subnet": first_of(r, "subnet", "interface"),
                    "metric": r.get("metric"),
                    "description": r.get("description"),
                },
            )
    elif leaf == "policies.yaml":
        for p in _mappings_of(doc, "policies", path):
            t.add(
                "network_policies",
                {
                    "backup_set_id": sid,
                    "name": p.get("name"),
                    "action": p.get("action"),
                    "source": json_text(first_of(p, "from", "source")),
                    "destination": json_text(first_of(p, "to", "target")),
                    "protocol": p.get("protocol"),
                    "ports": p.get("ports"),
                },
            )
    elif leaf == "dns.yaml":
        d = mapping(doc, path)
        for r in _mappings_of(d.get("records") or [], "records", path):
            t.add(
                "dns_records",
                {
                    "backup_set_id": sid,
                    "zone": first_of(d, "zone", "domain"),
                    "name": r.get("name"),
                    "type": r.get("type"),
                    "address": first_of(r, "address", "value", "ip", "data"),
                    "component_id": r.get("component"),
                    "ttl": r.get("ttl", d.get("ttl")),
                },
            )
    elif leaf == "connectivity.yaml":
        for link in _mappings_of(doc, "links", path):
            t.add(
                "network_links",
                {
                    "backup_set_id": sid,
                    "source": first_of(link, "from", "source"),
                    "destination": first_of(link, "to", "target"),
                    "protocol": link.get("protocol"),
                    "ports": link.get("ports"),
                },
            )


def _mappings_of(doc: Any, key: str, path: str) -> list[dict[str, Any]]:
    """The objects of a document's `key` list (or of the document as a list, or keyed by name)."""
    raw = doc.get(key, doc) if isinstance(doc, dict) else doc
    if isinstance(raw, dict) and not all(isinstance(v, dict) for v in raw.values()):
        raise BackupSetError(f"{key} must be a list of objects or a mapping of them by name", path=path)
    return [mapping(item, path) for item in document_items(doc, key)]
