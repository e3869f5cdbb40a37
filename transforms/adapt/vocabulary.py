"""The adaptation's vocabulary, shared by every transform: modes, the policy's bounds, one change."""

from __future__ import annotations

from dataclasses import dataclass

from omni_recovery.errors import RecoveryError

ADAPTATION_MODES = ("basic", "advanced")


class AdaptationError(RecoveryError):
    """The environment cannot be adapted onto the inventory; the message says what does not fit and by
    how much."""


@dataclass(frozen=True)
class Adaptation:
    """One change the adaptation made: `kind` (node, placement, scaling, subnet, address, mac, route,
    policy, dns, link, storage-path, storage-class, ...), the `subject` changed, `old` → `new`, and why."""

    kind: str
    subject: str
    old: str
    new: str
    reason: str


@dataclass(frozen=True)
class AdaptationPolicy:
    """The stated bounds of the adaptation.

    cpu_overcommit: VM vCPUs a Director may run per physical core left after its own reservation.
    scale_min / scale_max: bounds of the factor applied to an application VM's CPU and memory.
    scale_up_fill: advanced mode scales applications up only while the Directors stay below this fill.
    """

    cpu_overcommit: float = 2.0
    scale_min: float = 0.5
    scale_max: float = 2.0
    scale_up_fill: float = 0.7
