"""The new CA and node certificates of a recovery run, issued once and kept in the run's folder.

A resumed run finds them in `<workspace>/runs/<run>/certificates.json` (mode 0600) and issues
none anew, so every node of one recovery trusts the same CA. Each node's certificate names the node
and the new management addresses of the Directors placed on it. An old CA certificate that cannot
be read is left out (the plan says so): the new CA is issued either way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from omni_recovery.restorer.certificates import (
    CertificateBundle,
    IssuedCertificate,
    NodeIdentity,
    issue_certificates,
    old_ca_problem,
)
from transforms.plan import Plan

STORED_NAME = "certificates.json"


def run_certificates(run_folder: Path, plan: Plan, old_ca: bytes | None) -> CertificateBundle:
    """The run's certificates: those kept in `run_folder`, else issued now and kept there."""
    stored = run_folder / STORED_NAME
    if stored.exists():
        return _bundle_from_json(json.loads(stored.read_text()))
    identities = [NodeIdentity(n.name, (n.name,), tuple(_node_ips(plan, n.name))) for n in plan.nodes]
    if old_ca_problem(old_ca):
        old_ca = None
    bundle = issue_certificates(plan.environment, identities, old_ca_pem=old_ca)
    stored.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(stored, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(_bundle_to_json(bundle), out)
    return bundle


def address_owner(owner: str) -> str:
    """The component a plan's address belongs to: `director:dir-1 (management)` → `director:dir-1`."""
    return owner.partition(" (")[0]


def _node_ips(plan: Plan, node: str) -> list[str]:
    directors = {p.director for p in plan.placements if p.node == node} | {
        n.director for n in plan.nodes if n.name == node and n.director
    }
    owners = {f"director:{d}" for d in directors if d}
    return sorted({a.new for a in plan.addresses if address_owner(a.owner) in owners})


def _bundle_to_json(bundle: CertificateBundle) -> dict[str, Any]:
    return {
        "ca_cert_pem": bundle.ca_cert_pem.decode(),
        "ca_key_pem": bundle.ca_key_pem.decode(),
        "ca_fingerprint_sha256": bundle.ca_fingerprint_sha256,
        "old_ca_fingerprint_sha256": bundle.old_ca_fingerprint_sha256,
        "nodes": {
            name: {
                "cert_pem": c.cert_pem.decode(),
                "key_pem": c.key_pem.decode(),
                "fingerprint_sha256": c.fingerprint_sha256,
            }
            for name, c in bundle.nodes.items()
        },
    }


def _bundle_from_json(data: dict[str, Any]) -> CertificateBundle:
    return CertificateBundle(
        ca_cert_pem=data["ca_cert_pem"].encode(),
        ca_key_pem=data["ca_key_pem"].encode(),
        ca_fingerprint_sha256=data["ca_fingerprint_sha256"],
        old_ca_fingerprint_sha256=data["old_ca_fingerprint_sha256"],
        nodes={
            name: IssuedCertificate(
                name, c["cert_pem"].encode(), c["key_pem"].encode(), c["fingerprint_sha256"]
            )
            for name, c in data["nodes"].items()
        },
    )
