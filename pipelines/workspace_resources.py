"""The resources of one workspace, as every run started from this code location uses them: the
command line's runs (pipelines.runner) and the UI's (pipelines.definitions) alike."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from assets.adaptation import PlanningResource
from assets.checks import TrustedKeys
from io_managers.parquet import ParquetIOManager
from io_managers.postgres import PostgresCatalogIOManager
from omni_recovery.settings import Settings
from pipelines.backup_resource import BackupWriterResource
from pipelines.recovery_resource import RecoveryResource
from pipelines.resources import BackupSetRegistry, PracticeResource, Progress


def build_resources(
    settings: Settings,
    *,
    progress: Callable[[str, int], None] | None = None,
    watch_url: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The resources of one workspace; `overrides` replace some of them with what the command line
    prepared (the run's `RestoreSession` as `recovery`, its own validation as `planning`)."""
    catalog = str(settings.catalog)
    return {
        "parquet_io_manager": ParquetIOManager(base_url=catalog),
        "catalog_io_manager": PostgresCatalogIOManager(
            base_url=catalog, workspace=str(settings.workspace), database_url=settings.database_url
        ),
        "iso_registry": BackupSetRegistry(workspace=str(settings.workspace), watch_url=watch_url),
        "trusted_keys": TrustedKeys(),
        "progress": Progress(progress),
        "recovery": RecoveryResource(workspace=str(settings.workspace)),
        "backup_writer": BackupWriterResource(),
        "planning": PlanningResource(
            workspace=str(settings.workspace), database_url=settings.database_url or ""
        ),
        "practice": PracticeResource(
            workspace=str(settings.workspace), database_url=settings.database_url or ""
        ),
        **(overrides or {}),
    }
