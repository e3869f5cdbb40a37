"""Ring and cluster membership: majority rule, deterministic leader, identical files everywhere."""

from __future__ import annotations

import pytest
import yaml

from omni_recovery.errors import RecoveryError
from omni_recovery.restorer.membership import (
    MembershipError,
    QuorumError,
    form_cluster,
    form_ring,
    majority,
    render_cluster_file,
    render_ring_file,
)


def test_majority():
    assert [majority(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]


def test_ring_of_the_restored_directors_with_the_next_epoch():
    ring = form_ring(["dir-3", "dir-1", "dir-2"], ["dir-2", "dir-1"], 7, ring_id="ring-a")
    assert ring.members == ("dir-1", "dir-2") and ring.epoch == 8 and ring.quorum == 2
    assert ring.missing == ("dir-3",)
    full = form_ring(["dir-1", "dir-2", "dir-3"], ["dir-3", "dir-2", "dir-1"], 0)
    assert full.members == ("dir-1", "dir-2", "dir-3") and full.quorum == 2 and full.epoch == 1


def test_ring_fails_without_a_majority():
    with pytest.raises(QuorumError, match=r"only 1 of 3 Directors.*Missing: dir-2, dir-3") as info:
        form_ring(["dir-1", "dir-2", "dir-3"], ["dir-1"], 4)
    assert isinstance(info.value, RecoveryError)
    with pytest.raises(QuorumError):
        form_ring(["dir-1", "dir-2"], ["dir-2"], 0)
    with pytest.raises(QuorumError):
        form_ring(["dir-1"], [], 0)


@pytest.mark.parametrize(
    ("everyone", "restored"),
    [([], []), (["a", "a"], ["a"]), (["a", "b"], ["a", "c"]), (["a", ""], ["a"])],
)
def test_bad_ids_are_refused(everyone: list[str], restored: list[str]):
    with pytest.raises(MembershipError):
        form_ring(everyone, restored, 0)


def test_cluster_leader_is_deterministic():
    a = form_cluster(["orch-3", "orch-1", "orch-2"], ["orch-3", "orch-2"], previous_term=5)
    b = form_cluster(["orch-1", "orch-2", "orch-3"], ["orch-2", "orch-3"], previous_term=5)
    assert a == b and a.leader == "orch-2" and a.members == ("orch-2", "orch-3") and a.term == 6
    assert form_cluster(["orch-1", "orch-2", "orch-3"], ["orch-1", "orch-2", "orch-3"]).leader == "orch-1"
    with pytest.raises(QuorumError):
        form_cluster(["orch-1", "orch-2", "orch-3"], ["orch-3"])
    assert form_cluster(["orch-1", "orch-2", "orch-3"], ["orch-3"], require_majority=False).leader == "orch-3"


def test_rendered_files_are_identical_for_every_member():
    ring = form_ring(["d2", "d1", "d3"], ["d3", "d1", "d2"], 2, ring_id="r1")
    same = form_ring(["d1", "d2", "d3"], ["d1", "d2", "d3"], 2, ring_id="r1")
    addresses = {"d1": "10.20.0.11", "d2": "10.20.0.12", "d3": "10.20.0.13"}
    data = render_ring_file(ring, addresses)
    assert data == render_ring_file(same, dict(reversed(addresses.items())))
    parsed = yaml.safe_load(data)
    assert parsed["epoch"] == 3 and parsed["quorum"] == 2 and parsed["ring_id"] == "r1"
    assert [m["director_id"] for m in parsed["members"]] == ["d1", "d2", "d3"]
    cluster = form_cluster(["o1", "o2"], ["o2", "o1"], cluster_id="c1")
    parsed = yaml.safe_load(render_cluster_file(cluster))
    assert parsed == {
        "cluster_id": "c1",
        "term": 1,
        "leader": "o1",
        "members": [{"orchestrator_id": "o1"}, {"orchestrator_id": "o2"}],
        "missing": [],
    }
