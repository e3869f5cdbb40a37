"""Ring and cluster membership of a restored environment: pure functions, same answer everywhere.

How it works
------------
The Directors of an environment form one ring. After a restore, the ring is formed again from
the Directors that were restored: `form_ring()` takes the original Director ids, the ids that
were restored and the epoch recorded in the backup, and returns the membership every Director
gets: the restored members in sorted order, the next epoch (previous + 1, so no Director can
confuse the new ring with the old one) and the quorum (a majority of the new members). It
fails with QuorumError when fewer than a majority of the original Directors were restored: a
ring formed from a minority could disagree with state it never saw.

The Orchestrators form one cluster: `form_cluster()` returns its members (sorted), a leader
chosen deterministically (the lowest restored id, so every Orchestrator and every rerun picks
the same one without an election), and the next term. By default it also requires a majority
of the original Orchestrators.

`render_ring_file()` / `render_cluster_file()` give the YAML bytes written to every member;
they depend only on the membership, so every member gets byte-identical files.

What can go wrong
-----------------
QuorumError (a RecoveryError) when too few members were restored; MembershipError for ids that
are empty, duplicated, or restored without being part of the original set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from omni_recovery.errors import RecoveryError
from omni_recovery.yaml_text import safe_dump

__all__ = [
    "ClusterMembership",
    "MembershipError",
    "QuorumError",
    "RingMembership",
    "form_cluster",
    "form_ring",
    "majority",
    "render_cluster_file",
    "render_ring_file",
]


class MembershipError(RecoveryError):
    """Membership cannot be formed from the ids given."""


class QuorumError(MembershipError):
    """Fewer than a majority of the original members were restored."""


@dataclass(frozen=True)
class RingMembership:
    members: tuple[str, ...]
    epoch: int
    quorum: int
    missing: tuple[str, ...] = ()
    ring_id: str | None = None


@dataclass(frozen=True)
class ClusterMembership:
    members: tuple[str, ...]
    leader: str
    term: int
    missing: tuple[str, ...] = ()
    cluster_id: str | None = None


def majority(count: int) -> int:
    """The smallest number of members that is more than half of `count`."""
    return count // 2 + 1


def _check(kind: str, original: Iterable[str], restored: Iterable[str]) -> tuple[list[str], list[str]]:
    everyone = list(original)
    back = list(restored)
    for ids, what in ((everyone, kind), (back, f"restored {kind}")):
        if any(not isinstance(i, str) or not i for i in ids):
            raise MembershipError(f"{what} ids must be non-empty text, found {ids}")
        if len(set(ids)) != len(ids):
            raise MembershipError(f"{what} ids are duplicated: {sorted(ids)}")
    if not everyone:
        raise MembershipError(f"there are no {kind}s to form membership from")
    unknown = sorted(set(back) - set(everyone))
    if unknown:
        raise MembershipError(f"restored {kind}s {unknown} are not among the original {sorted(everyone)}")
    return sorted(everyone), sorted(back)


def form_ring(
    director_ids: Iterable[str],
    restored_ids: Iterable[str],
    previous_epoch: int,
    *,
    ring_id: str | None = None,
) -> RingMembership:
    """The ring every restored Director holds; QuorumError without a majority of the Directors."""
    if previous_epoch < 0:
        raise MembershipError(f"previous epoch {previous_epoch} must not be negative")
    everyone, back = _check("Director", director_ids, restored_ids)
    if len(back) < majority(len(everyone)):
        raise QuorumError(
            f"only {len(back)} of {len(everyone)} Directors were restored ({', '.join(back) or 'none'}); "
            f"a ring needs a majority of {majority(len(everyone))}. Missing: "
            f"{', '.join(sorted(set(everyone) - set(back)))}"
        )
    missing = tuple(sorted(set(everyone) - set(back)))
    return RingMembership(tuple(back), previous_epoch + 1, majority(len(back)), missing, ring_id)


def form_cluster(
    orchestrator_ids: Iterable[str],
    restored_ids: Iterable[str],
    *,
    previous_term: int = 0,
    cluster_id: str | None = None,
    require_majority: bool = True,
) -> ClusterMembership:
    """The cluster every restored Orchestrator holds, with the lowest restored id as leader."""
    if previous_term < 0:
        raise MembershipError(f"previous term {previous_term} must not be negative")
    everyone, back = _check("Orchestrator", orchestrator_ids, restored_ids)
    needed = majority(len(everyone)) if require_majority else 1
    if len(back) < needed:
        raise QuorumError(
            f"only {len(back)} of {len(everyone)} Orchestrators were restored; the cluster needs {needed}. "
            f"Missing: {', '.join(sorted(set(everyone) - set(back)))}"
        )
    missing = tuple(sorted(set(everyone) - set(back)))
    return ClusterMembership(tuple(back), back[0], previous_term + 1, missing, cluster_id)


def _dump(document: Mapping[str, object]) -> bytes:
    return safe_dump(dict(document), sort_keys=False, default_flow_style=False).encode("utf-8")


def _members(
    id_key: str, members: Sequence[str], addresses: Mapping[str, str] | None
) -> list[dict[str, str]]:
    """Each member under `id_key`, with its address when `addresses` has one."""
    return [
        {id_key: member, **({"address": addresses[member]} if addresses and member in addresses else {})}
        for member in members
    ]


def render_ring_file(ring: RingMembership, addresses: Mapping[str, str] | None = None) -> bytes:
    """The ring membership file every Director gets (identical bytes for every member)."""
    return _dump(
        {
            "ring_id": ring.ring_id,
            "epoch": ring.epoch,
            "quorum": ring.quorum,
            "members": _members("director_id", ring.members, addresses),
            "missing": list(ring.missing),
        }
    )


def render_cluster_file(cluster: ClusterMembership, addresses: Mapping[str, str] | None = None) -> bytes:
    """The cluster membership file every Orchestrator gets (identical bytes for every member)."""
    return _dump(
        {
            "cluster_id": cluster.cluster_id,
            "term": cluster.term,
            "leader": cluster.leader,
            "members": _members("orchestrator_id", cluster.members, addresses),
            "missing": list(cluster.missing),
        }
    )
