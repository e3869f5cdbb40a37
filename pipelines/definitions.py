"""The code location: every asset, job, sensor and resource, as `defs` for `dagster dev -w workspace.yaml`.

How it works: `build_definitions(settings)` wires the assets of each stage to their resources
for one workspace (`Settings`): Parquet under `settings.catalog`, PostgreSQL from
`OMNI_RECOVERY_DATABASE_URL` or the workspace's embedded server, the ISO registry in the
workspace. `defs` is that for `load_settings()`, i.e. `OMNI_RECOVERY_WORKSPACE` or
`./.omni-recovery`. The command line builds its own with `build_definitions(settings, progress=...)`
so that the UI and the CLI run the very same assets.

Groups follow the flow: ingest → catalog → validation → adaptation → plan → restore (the restore
assets, one per phase of a recovery plan; volumes and applications partitioned by application).
Jobs: `ingest_isos` (partitioned by ISO), `build_catalog`, `validate_set`, `plan_recovery`,
`restore` and `create_backup` (`backup create`). The structural validation checks are asset checks
on the ingest and catalog assets; the deep validation (every byte) is the `deep_validation` asset,
run when asked.

What can go wrong: loading this module touches nothing (no database is started until an asset
loads rows); a workspace folder that does not exist yet is created on first materialisation.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from dagster import AssetSelection, Definitions, define_asset_job

from assets.backup import BACKUP_ASSETS
from assets.catalog import CATALOG_ASSETS
from assets.checks import ASSET_CHECKS
from assets.ingest import INGEST_TABLES, ingest_iso
from assets.plan import ADAPTATION_ASSETS
from assets.restore import RESTORE_ASSETS
from assets.validation import VALIDATION_ASSETS
from omni_recovery.register.ssh_hosts import pin_registered_hosts
from omni_recovery.settings import Settings, load_settings
from pipelines.restore_definitions import restore_job
from pipelines.schedules import PRACTICE_JOBS, PRACTICE_SCHEDULES
from pipelines.sensors import notify_failures, notify_recovery_finished, watched_iso_folder
from pipelines.workspace_resources import build_resources

__all__ = ["ALL_ASSETS", "WATCH_URL_ENV", "build_definitions", "build_resources", "defs"]

WATCH_URL_ENV = "OMNI_RECOVERY_WATCH_URL"
ALL_ASSETS = [ingest_iso, *CATALOG_ASSETS]

ingest_isos_job = define_asset_job(
    "ingest_isos",
    selection=AssetSelection.assets(*INGEST_TABLES),
    description="Ingest ISOs (one partition per ISO file) into Arrow tables.",
)
build_catalog_job = define_asset_job(
    "build_catalog",
    selection=AssetSelection.groups("catalog"),
    description="Combine every ingested ISO into the catalog (Parquet + PostgreSQL).",
)


plan_recovery_job = define_asset_job(
    "plan_recovery",
    selection=AssetSelection.groups("adaptation", "plan"),
    description="Adapt the registered set (resources.planning: inventory_path, backup_set_id, "
    "adaptation_mode) and write, picture and store the recovery plan.",
)
validate_set_job = define_asset_job(
    "validate_set",
    selection=AssetSelection.groups("validation"),
    description="Deep validation of the registered set (resources.planning.backup_set_id, else the most "
    "recent), stored in the recovery database: what a restore requires on record.",
)
create_backup_job = define_asset_job(
    "create_backup",
    selection=AssetSelection.groups("backup"),
    description="Write a signed, encrypted backup set (resources.backup_writer: source, output, signing_key; "
    "the passphrase from OMNI_RECOVERY_PASSPHRASE).",
)


def build_definitions(
    settings: Settings,
    *,
    progress: Callable[[str, int], None] | None = None,
    watch_url: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Definitions:
    """Every asset, job and sensor bound to the resources of `settings` (and the SSH hosts its sets
    were registered from pinned, so that a run reads an ssh:// set from the host that proves the same key)."""
    pin_registered_hosts(settings.workspace)
    return Definitions(
        assets=[*ALL_ASSETS, *VALIDATION_ASSETS, *ADAPTATION_ASSETS, *RESTORE_ASSETS, *BACKUP_ASSETS],
        asset_checks=ASSET_CHECKS,
        jobs=[
            ingest_isos_job,
            build_catalog_job,
            validate_set_job,
            plan_recovery_job,
            restore_job,
            create_backup_job,
            *PRACTICE_JOBS,
        ],
        schedules=PRACTICE_SCHEDULES,
        sensors=[watched_iso_folder, notify_recovery_finished, notify_failures],
        resources=build_resources(settings, progress=progress, watch_url=watch_url, overrides=overrides),
    )


defs = build_definitions(load_settings(), watch_url=os.environ.get(WATCH_URL_ENV) or None)
