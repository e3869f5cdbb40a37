"""Which VM runs what: this project's `vm_id`/`vm` fields, else the index's attributes, else the VM
carrying the component's address or named after it; a VM nobody claims stays with its Director."""

from __future__ import annotations

from dataclasses import replace

from transforms.documents.model import VM, Network
from transforms.documents.sources import (
    _KIND_ROLE,
    _NAME_PREFIXES,
    _ROLE_KIND,
    _VM_KEYS,
    _Index,
    _ip_text,
    _text,
    _Workloads,
)


def _claims(work: _Workloads, index: _Index, vms: list[VM], network: Network) -> dict[str, str]:
    """component id → the vm_id it runs on, as its document names it (`vm_id` of an Orchestrator's
    config, `vm` of a service or application: this project's fields) or the index's attributes do;
    for the rest, inferred from the VMs (`_infer_claims`)."""
    claims: dict[str, str] = {}
    for cid, doc in work.documents():
        vm = _text(doc, *_VM_KEYS[cid.partition(":")[0]]) or index.attribute(cid, "vm_id", "vm")
        if vm is not None:
            claims[cid] = vm
    _infer_claims(claims, [cid for cid, _ in work.documents()], vms, _known_addresses(work, network))
    return claims


def _known_addresses(work: _Workloads, network: Network) -> dict[str, str]:
    """address → component: DNS records naming their component, and Orchestrators' `address`."""
    found = {r.address: r.component for r in network.records if r.component}
    for oid, (_, cfg) in work.orchestrators.items():
        address = _ip_text(cfg.get("address"))
        if address:
            found[address] = f"orchestrator:{oid}"
    return found


def _infer_claims(
    claims: dict[str, str], components: list[str], vms: list[VM], addresses: dict[str, str]
) -> None:
    """Give each component without a VM a free VM of a fitting role: first one carrying the component's
    address, then one named after it (`billing`, `app-billing`, `svc-auth`, `orch-1`, …)."""
    taken = set(claims.values())
    free = [vm for vm in vms if vm.vm_id not in taken]

    def carries(vm: VM, cid: str) -> bool:
        return any(addresses.get(n.ip) == cid for n in vm.networks)

    for matches in (carries, _named_for):
        for cid in components:
            if cid in claims:
                continue
            kind = cid.partition(":")[0]
            vm = next(
                (v for v in free if _ROLE_KIND.get(v.role.lower(), kind) == kind and matches(v, cid)), None
            )
            if vm is not None:
                claims[cid] = vm.vm_id
                free.remove(vm)


def _named_for(vm: VM, cid: str) -> bool:
    kind, _, name = cid.partition(":")
    names = {name, f"{name}-vm", *(f"{prefix}-{name}" for prefix in _NAME_PREFIXES[kind])}
    return vm.name.lower() in {n.lower() for n in names}


def _owned(vms: list[VM], claims: dict[str, str]) -> tuple[VM, ...]:
    """The VMs with their owner and a role that agrees with it. A VM no component claims stays with its
    Director (owner `director:{id}`): it is still placed and recreated, never scaled unless it says it
    hosts an application."""
    owners = {vm_id: cid for cid, vm_id in claims.items()}
    result = []
    for vm in vms:
        owner = owners.get(vm.vm_id)
        if owner is None:
            role = _KIND_ROLE.get(_ROLE_KIND.get(vm.role.lower(), ""), "service")
            result.append(replace(vm, owner=f"director:{vm.director}", role=role))
        else:
            result.append(replace(vm, owner=owner, role=_KIND_ROLE[owner.partition(":")[0]]))
    return tuple(result)
