"""Resource scaling: CPU and memory requests of application VMs scaled to what the new Directors hold.

Pure functions. Orchestrator and core-service VMs are never scaled (the control plane is restored
whole). Application VMs are scaled within the policy's bounds (default 0.5×–2×):

- down, when the VMs do not fit the Directors' capacity: low-priority applications first, then
  standard ones, critical applications last (kept whole as long as anything else can give way);
- up, in advanced mode only, when the new Directors are so much larger that the applications can
  grow by at least a quarter and the Directors stay under `scale_up_fill`.

Basic mode never scales up: it keeps the original shape where it fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from transforms.adapt.vocabulary import Adaptation, AdaptationPolicy
from transforms.documents import Environment

TIERS_DOWN = ("low", "standard", "critical")
MEMORY_STEP_MIB = 64


@dataclass(frozen=True)
class VmDemand:
    """What one VM asks of a Director, and where it ran before."""

    vm_id: str
    name: str
    role: str
    owner: str
    priority: str
    cpu: int
    memory_mib: int
    disk_gib: int
    director: str  # the old Director
    cpu_factor: float = 1.0
    memory_factor: float = 1.0

    @property
    def scalable(self) -> bool:
        return self.role == "app"


def vm_demands(env: Environment) -> list[VmDemand]:
    """Every VM of the environment as a demand, in Director then state order."""
    return [
        VmDemand(
            vm.vm_id,
            vm.name,
            vm.role,
            vm.owner,
            env.priority_of_vm(vm),
            vm.cpu,
            vm.memory_mib,
            vm.disk_gib,
            vm.director,
        )
        for vm in env.vms
    ]


def tier_factors(
    demand: dict[str, float],
    fixed: float,
    capacity: float,
    mode: str,
    policy: AdaptationPolicy,
    growth: float = 1.0,
) -> dict[str, float] | None:
    """Factor per priority tier so that fixed + Σ tier × factor ≤ capacity; None when even the lower bound
    is not enough. `demand` maps tier → total request of the scalable VMs of that tier; `growth` is how
    much larger the new Directors are than the old ones (advanced mode never scales up beyond it)."""
    total = fixed + sum(demand.values())
    if total <= capacity:
        scalable = sum(demand.values())
        if mode != "advanced" or scalable <= 0:
            return dict.fromkeys(TIERS_DOWN, 1.0)
        up = (capacity * policy.scale_up_fill - fixed) / scalable
        up = min(policy.scale_max, growth, math.floor(up * 4) / 4)
        return dict.fromkeys(TIERS_DOWN, up if up >= 1.25 else 1.0)
    deficit = total - capacity
    factors = dict.fromkeys(TIERS_DOWN, 1.0)
    for tier in TIERS_DOWN:
        amount = demand.get(tier, 0.0)
        if amount <= 0:
            continue
        reducible = amount * (1 - policy.scale_min)
        if deficit <= reducible:
            factors[tier] = max(policy.scale_min, 1 - deficit / amount)
            return factors
        factors[tier] = policy.scale_min
        deficit -= reducible
    return None


def scale_value(value: int, factor: float, step: int = 1) -> int:
    """`value` × factor rounded to `step`, towards the original (so the result stays within the bounds)."""
    if factor == 1.0:
        return value
    scaled = value * factor / step
    rounded = math.ceil(scaled - 1e-9) if factor < 1 else math.floor(scaled + 1e-9)
    return max(step, int(rounded) * step) if factor < 1 else max(value, int(rounded) * step)


def scale_demands(
    demands: list[VmDemand],
    cpu_capacity: float,
    memory_capacity: float,
    mode: str,
    policy: AdaptationPolicy,
    growth: tuple[float, float] = (1.0, 1.0),
) -> list[VmDemand] | None:
    """The demands with application VMs scaled to fit the totals; None when they cannot fit.
    `growth`: new ÷ old Director capacity, for CPU and memory (bounds any scaling up)."""
    factors: list[dict[str, float]] = []
    for attr, capacity, grow in (
        ("cpu", cpu_capacity, growth[0]),
        ("memory_mib", memory_capacity, growth[1]),
    ):
        fixed = float(sum(getattr(d, attr) for d in demands if not d.scalable))
        by_tier: dict[str, float] = {}
        for d in demands:
            if d.scalable:
                by_tier[d.priority] = by_tier.get(d.priority, 0.0) + getattr(d, attr)
        found = tier_factors(by_tier, fixed, capacity, mode, policy, grow)
        if found is None:
            return None
        factors.append(found)
    cpu_f, mem_f = factors
    return [
        _scaled(d, cpu_f.get(d.priority, 1.0), mem_f.get(d.priority, 1.0)) if d.scalable else d
        for d in demands
    ]


def _scaled(d: VmDemand, cpu_factor: float, memory_factor: float) -> VmDemand:
    cpu = scale_value(d.cpu, cpu_factor)
    memory = scale_value(d.memory_mib, memory_factor, MEMORY_STEP_MIB)
    if memory_factor < 1 and d.memory_mib % MEMORY_STEP_MIB:
        memory = min(memory, d.memory_mib)
    return replace(
        d,
        cpu=cpu,
        memory_mib=memory,
        cpu_factor=round(cpu / d.cpu, 4) if d.cpu else 1.0,
        memory_factor=round(memory / d.memory_mib, 4) if d.memory_mib else 1.0,
    )


def scaling_adaptations(before: list[VmDemand], after: list[VmDemand]) -> list[Adaptation]:
    """One `scaling` adaptation for every VM whose CPU or memory request changed."""
    old = {d.vm_id: d for d in before}
    result = []
    for d in after:
        o = old[d.vm_id]
        if (o.cpu, o.memory_mib) == (d.cpu, d.memory_mib):
            continue
        direction = "smaller" if (d.cpu, d.memory_mib) < (o.cpu, o.memory_mib) else "larger"
        result.append(
            Adaptation(
                kind="scaling",
                subject=d.owner,
                old=f"{o.cpu} vCPU, {o.memory_mib} MiB",
                new=f"{d.cpu} vCPU, {d.memory_mib} MiB (×{d.cpu_factor:g} CPU, ×{d.memory_factor:g} memory)",
                reason=f"the new Directors are {direction}; {d.priority} application"
                + (
                    ", scaled after every less important one"
                    if d.priority != "low" and direction == "smaller"
                    else ""
                ),
            )
        )
    return result
