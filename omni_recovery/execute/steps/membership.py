"""The steps that form the Director ring and the Orchestrator cluster.

Each writes one membership file to every member it names (`ring.yaml`, `cluster.yaml`), the same
on all of them: the members whose restore step succeeded in this run, with their new management
addresses; the ring keeps its id, epoch and quorum, the cluster its id and a deterministic leader
(restorer/membership.py).
"""

from __future__ import annotations

from omni_recovery.execute.context import RunContext
from omni_recovery.execute.options import StepOutcome
from omni_recovery.execute.run_certificates import address_owner
from omni_recovery.execute.tracking import SUCCEEDED
from omni_recovery.restorer.membership import form_cluster, form_ring, render_cluster_file, render_ring_file
from transforms.plan import Step
from transforms.target_layout import node_root


def form_director_ring(context: RunContext, step: Step) -> StepOutcome:
    directors, restored = _members(context, "director")
    ring = form_ring(sorted(directors), restored, 0, ring_id=step.id.split("/", 1)[1])
    content = render_ring_file(ring, _addresses(context, "director:"))
    _write_to_each(context, directors, "directors/{}/ring.yaml", content)
    return StepOutcome(
        SUCCEEDED,
        len(content) * len(directors),
        {"members": list(ring.members), "epoch": ring.epoch, "quorum": ring.quorum},
    )


def form_orchestrator_cluster(context: RunContext, step: Step) -> StepOutcome:
    nodes, restored = _members(context, "orchestrator")
    cluster = form_cluster(sorted(nodes), restored, cluster_id=step.id.split("/", 1)[1])
    content = render_cluster_file(cluster, _addresses(context, "orchestrator:"))
    _write_to_each(context, nodes, "orchestrators/{}/cluster.yaml", content)
    return StepOutcome(
        SUCCEEDED, len(content) * len(nodes), {"members": list(cluster.members), "leader": cluster.leader}
    )


def _members(context: RunContext, kind: str) -> tuple[dict[str, str], list[str]]:
    """Director or Orchestrator id → the new node its step restores it on; and those whose step
    succeeded in this run."""
    placed = {
        s.component.split(":", 1)[1]: s.node
        for s in context.plan.steps
        if s.id.startswith(f"{kind}/") and s.component and s.node
    }
    done = context.tracker.succeeded_steps()
    return placed, [member for member in placed if f"{kind}/{member}" in done]


def _write_to_each(context: RunContext, members: dict[str, str], path: str, content: bytes) -> None:
    for member, node in members.items():
        context.target(node_root(node)).write_bytes_atomic(path.format(member), content, mode=0o644)


def _addresses(context: RunContext, prefix: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for address in context.plan.addresses:
        owner = address_owner(address.owner)
        if owner.startswith(prefix) and address.subnet == "management":
            out.setdefault(owner.split(":", 1)[1], address.new)
    return out
