"""What `validate-isos --deep` calls for a registered set: the `validate_set` job, as the UI runs it.

How it works: `validate_registered_set` runs the named job `validate_set` (the `deep_validation`
asset) in this process, in the workspace's Dagster instance, with a `planning` resource that
validates with what the command line was given (trusted keys, passphrase, threads, progress bars)
instead of the code location's environment. The asset stores the report in the recovery database
and records it as its materialisation, so the UI shows the command line's deep validation as its
own. The report comes back for the command line to print.

What can go wrong: a set that fails deep validation fails the run (the asset raises with the
problem table, its report stored all the same); the report is returned and the command line exits 1.
Any other failure (no database, a set no longer where it was registered) is raised as the
library's own error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from assets.adaptation import PlanningResource
from omni_recovery.backupset.signing import TrustedSigners
from omni_recovery.settings import Settings
from omni_recovery.validate import ValidationReport, validate
from omni_recovery.validate.problems import Problem, no_progress
from pipelines.definitions import build_definitions
from pipelines.runner import QUIET_CONSOLE, dagster_instance, run_job, user_error

__all__ = ["CommandLineValidation", "validate_registered_set"]


class CommandLineValidation:
    """The `planning` resource of a `validate_set` run the command line starts: its set, keys and bars."""

    def __init__(
        self,
        planning: PlanningResource,
        trusted: TrustedSigners,
        passphrase: bytes,
        parallel_factor: int,
        progress: Callable[..., Any] | None,
    ) -> None:
        self.planning, self.trusted, self.passphrase = planning, trusted, passphrase
        self.parallel_factor, self.progress = parallel_factor, progress
        self.report: ValidationReport | None = None

    def settings(self) -> Settings:
        return self.planning.settings()

    def registered_set(self, backup_set_id: str | None = None) -> tuple[str, str]:
        return self.planning.registered_set(backup_set_id)

    def deep_validator(self) -> Callable[[str], tuple[ValidationReport, list[Problem]]]:
        return self._validate

    def _validate(self, folder: str) -> tuple[ValidationReport, list[Problem]]:
        self.report = validate(
            folder,
            self.trusted,
            self.passphrase,
            deep=True,
            parallel_factor=self.parallel_factor,
            progress=self.progress or no_progress,
        )
        return self.report, []


def validate_registered_set(
    settings: Settings,
    backup_set_id: str,
    trusted: TrustedSigners,
    passphrase: bytes,
    *,
    parallel_factor: int = 2,
    progress: Callable[..., Any] | None = None,
    log_level: str = QUIET_CONSOLE,
) -> ValidationReport:
    """Deep-validate the registered set `backup_set_id` as a run of `validate_set`: its report."""
    planning = PlanningResource(
        workspace=str(settings.workspace),
        backup_set_id=backup_set_id,
        database_url=settings.database_url or "",
    )
    given = CommandLineValidation(planning, trusted, passphrase, parallel_factor, progress)
    defs = build_definitions(settings, overrides={"planning": given})
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    try:
        run_job(defs, "validate_set", dagster_instance(settings), run_config=run_config)
    except Exception as exc:
        if given.report is None or given.report.passed:
            raise user_error(exc, settings.dagster_home) from exc
    assert given.report is not None, "the deep_validation asset did not validate"
    return given.report
