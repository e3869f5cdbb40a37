"""Workspace settings: where omni-recovery keeps its state, and which database it talks to.

How it works: `load_settings()` decides two things once per command and returns them as a frozen
`Settings` value that is passed down explicitly (nothing reads the environment later):

- the workspace folder: the `--workspace DIR` argument, else the environment variable
  `OMNI_RECOVERY_WORKSPACE`, else `./.omni-recovery` under the current folder. It is made absolute
  at once, so a server started from one folder is found again from another.
- the database URL: the environment variable `OMNI_RECOVERY_DATABASE_URL`, else None, which means
  "the embedded PostgreSQL server kept in the workspace" (see `omni_recovery.db.server`).

The workspace's sub-folders are properties of `Settings`; `ensure_folders()` creates them.
Loading settings touches nothing on disk.

What can go wrong: an empty or blank environment variable counts as unset; a workspace on a
network filesystem may not support the file lock the embedded server relies on, and a workspace
path so long that PostgreSQL's socket path exceeds about 107 bytes moves the socket to a shared
runtime folder (see `omni_recovery.db.server`). `repr(Settings)` never shows the database URL, which
may hold a password.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from omni_recovery.errors import RecoveryError

WORKSPACE_ENV = "OMNI_RECOVERY_WORKSPACE"
DATABASE_URL_ENV = "OMNI_RECOVERY_DATABASE_URL"
DEFAULT_WORKSPACE = Path(".omni-recovery")
PASSPHRASE_ENV = "OMNI_RECOVERY_PASSPHRASE"


@dataclass(frozen=True)
class Settings:
    """Where this omni-recovery run keeps its state; build it with `load_settings()`."""

    workspace: Path
    database_url: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        db = "embedded" if self.database_url is None else "external (from OMNI_RECOVERY_DATABASE_URL)"
        return f"Settings(workspace={str(self.workspace)!r}, database={db})"

    @property
    def embedded(self) -> bool:
        """True when the recovery database is the embedded server kept in the workspace."""
        return self.database_url is None

    @property
    def pgdata(self) -> Path:
        """The embedded PostgreSQL server's data folder."""
        return self.workspace / "postgres"

    @property
    def server_lock(self) -> Path:
        """Lock file serialising starts and stops of the embedded server (beside, not in, pgdata)."""
        return self.workspace / "postgres.lock"

    @property
    def catalog(self) -> Path:
        """Parquet catalog tables (isos, files, components, dependencies, hardware)."""
        return self.workspace / "catalog"

    @property
    def dagster_home(self) -> Path:
        """DAGSTER_HOME for runs started by the command line."""
        return self.workspace / "dagster"

    @property
    def reports(self) -> Path:
        """Recovery reports (HTML and their data)."""
        return self.workspace / "reports"

    @property
    def plans(self) -> Path:
        """Recovery plans written or recorded by the planner."""
        return self.workspace / "plans"

    @property
    def staging(self) -> Path:
        """Scratch space for extracted or reassembled files during a restore."""
        return self.workspace / "staging"

    @property
    def logs(self) -> Path:
        """Log files of command-line runs."""
        return self.workspace / "logs"

    def ensure_folders(self) -> Settings:
        """Create the workspace and its sub-folders (not pgdata: the server creates that); return self."""
        folders = (self.catalog, self.dagster_home, self.reports, self.plans, self.staging, self.logs)
        for folder in (self.workspace, *folders):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def load_settings(
    workspace: str | Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from the `--workspace` argument, then the environment, then the defaults.

    `environ` defaults to `os.environ`; pass a mapping to decide without touching the process.
    """
    env = os.environ if environ is None else environ
    chosen: str | Path
    if workspace is not None and str(workspace).strip():
        chosen = workspace
    else:
        chosen = _env(env, WORKSPACE_ENV) or DEFAULT_WORKSPACE
    path = Path(chosen).expanduser().resolve()
    return Settings(workspace=path, database_url=_env(env, DATABASE_URL_ENV))


def code_location_passphrase() -> bytes:
    """The passphrase of a run started from the Dagster UI: from the code location's environment,
    never from run config."""
    value = os.environ.get(PASSPHRASE_ENV, "").encode("utf-8")
    if not value:
        raise RecoveryError(f"set {PASSPHRASE_ENV} in the environment of the code location")
    return value
