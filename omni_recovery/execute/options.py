"""What a recovery run is asked to do, and what one step did.

`ExecuteOptions` are the choices of `execute-plan`, `deploy-directors` or a launch from the Dagster
UI (the plan, where its set and inventory are when not recorded beside it, the applications of a
partial restore, the parallel factor...); `StepOutcome` is what a step handler hands back to the
runner. `RecoveryRefused` is the error of the gate: the run cannot start, and nothing was written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omni_recovery.errors import RecoveryError

Progress = Callable[[str, int], None]


class RecoveryRefused(RecoveryError):
    """The recovery cannot start: the set is not validated, the plan does not match it, or a key is wrong."""


# Seconds a Redis broker leaves a task unacknowledged before handing it out again (a lost
# worker's; also a running one's, so longer than the longest node op): kombu's own default.
DEFAULT_VISIBILITY_TIMEOUT = 3600


@dataclass(frozen=True)
class ExecuteOptions:
    plan_path: Path
    location: str | None = None
    inventory_path: Path | None = None
    applications: tuple[str, ...] = ()
    parallel_factor: int = 2
    io_priority: str = "normal"
    mode: str = "normal"
    signing_key: Path | None = None
    require_validation: bool = True
    reverify: bool = False
    allow_system_root: bool = False
    numeric_owner: bool = False
    ssh_identity: Path | None = None  # the key for every SSH root, over the inventory's identity_file
    bandwidth_limit: int | None = None  # bytes per second written to each SSH host
    ssh_data_channel: str = "auto"  # how file bytes go to SSH roots (targets.ssh_stream)
    # The application partitions a UI run was launched for: checked by the gate like --applications,
    # without narrowing the run's steps (each partitioned asset narrows its own).
    launched_applications: tuple[str, ...] = ()
    executor: str = "in-process"  # or "celery": the node steps on restore workers (pipelines/node_job.py)
    broker: str | None = None  # the workers' Celery broker; None: the recovery database's PostgreSQL
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT  # redis brokers only

    @property
    def parallel(self) -> int:
        return 1 if self.mode == "resource-efficient" else max(1, self.parallel_factor)

    def as_json(self) -> dict[str, Any]:
        return {
            "plan": str(self.plan_path),
            "applications": list(self.applications),
            "parallel_factor": self.parallel_factor,
            "io_priority": self.io_priority,
            "mode": self.mode,
            "numeric_owner": self.numeric_owner,
            "executor": self.executor,
        }


@dataclass
class StepOutcome:
    status: str
    bytes_written: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
