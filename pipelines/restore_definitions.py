"""The `restore` job, and the definitions `execute-plan` runs it from: the restore assets alone.

`restore_job` is the job of the code location (pipelines.definitions) too, so a run started here
shows in `dagster dev` under the same job name, with the same assets. `restore_definitions` binds
the restore assets to the run's `recovery` resource, the only one they need; leaving the other
stages' assets out spares execute-plan their imports (polars, DuckDB, the catalog's Arrow code).
"""

from __future__ import annotations

from typing import Any

from dagster import AssetSelection, Definitions, define_asset_job

from assets.restore import RESTORE_ASSETS

restore_job = define_asset_job(
    "restore",
    selection=AssetSelection.groups("restore"),
    description="Execute a recovery plan (configure resources.recovery with plan_path); applications are "
    "partitions, so a backfill of some of them restores only those.",
)


def restore_definitions(recovery: Any) -> Definitions:
    """The restore assets and job, with `recovery` (a pipelines.recovery_run.RestoreSession) as their
    resource."""
    return Definitions(assets=RESTORE_ASSETS, jobs=[restore_job], resources={"recovery": recovery})
