"""The result of one validation run: its problems, a verdict, a text table, JSON, database rows.

`passed` is true only when no problem is blocking. `store(conn, report)` writes the run and its
problems into omni.validation_runs / omni.validation_problems in one transaction. Those rows
refer to omni.backup_sets; when the set is not registered yet, a minimal row is added from its
backup_info (created_at, omnicloud_version, source_environment, iso_count) and left alone if
one exists. A report that names no backup_set_id (nothing in the folder was readable) cannot be
stored and says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from omni_recovery.db.audit import audit
from omni_recovery.errors import RecoveryError
from omni_recovery.safe_text import safe_text
from omni_recovery.validate.deep import Slice
from omni_recovery.validate.problems import Problem

_COLUMNS = ("severity", "check", "iso", "path", "expected", "found", "message")


@dataclass
class ValidationReport:
    """What one `validate` run checked and found."""

    run_id: str
    location: str
    backup_set_id: str | None
    deep: bool
    started_at: datetime
    finished_at: datetime
    isos: list[str]
    problems: list[Problem]
    signer_key_id: str | None = None
    set_info: dict[str, Any] = field(default_factory=dict)
    bytes_hashed: int = 0
    manifests_sha256: str | None = None  # backupset.reader.manifests_fingerprint of the ISOs checked
    subset: Slice | None = None  # a deep run of one slice: stored as not deep, it cannot clear a recovery

    @property
    def passed(self) -> bool:
        """No blocking problem: the set may be restored from."""
        return not any(problem.blocking for problem in self.problems)

    @property
    def blocking(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.blocking]

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def problems_of(self, check: str | None = None, iso: str | None = None) -> list[Problem]:
        """Problems of one check and/or one ISO (what a per-ISO asset check shows)."""
        return [
            pr
            for pr in self.problems
            if (check is None or pr.check == check) and (iso is None or pr.iso == iso)
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "location": self.location,
            "backup_set_id": self.backup_set_id,
            "deep": self.deep,
            "passed": self.passed,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "isos": self.isos,
            "signer_key_id": self.signer_key_id,
            "manifests_sha256": self.manifests_sha256,
            "bytes_hashed": self.bytes_hashed,
            "problems": [_shown_json(problem) for problem in self.problems],
        }

    def to_json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"

    def to_text(self) -> str:
        """A summary line and a table of the problems, for people."""
        verdict = "PASSED" if self.passed else "FAILED"
        mode = "deep" if self.deep else "shallow"
        errors = sum(1 for pr in self.problems if pr.severity == "error")
        warnings = len(self.problems) - errors
        head = (
            f"{verdict}: {mode} validation of backup set {self.backup_set_id or '(unknown)'} at "
            f"{self.location}: {len(self.isos)} ISO(s), {errors} error(s), {warnings} warning(s), "
            f"{len(self.blocking)} blocking"
        )
        if self.deep:
            rate = self.bytes_hashed / self.seconds / 1e6 if self.seconds > 0 else 0.0
            head += f"; {self.bytes_hashed} bytes hashed in {self.seconds:.1f} s ({rate:.0f} MB/s)"
        if not self.problems:
            return head + "\n"
        rows = [[c.upper() for c in _COLUMNS]] + [
            [
                pr.severity,
                pr.check,
                *(_shown(v) for v in (pr.iso, pr.path, pr.expected, pr.found)),
                _shown(pr.message),
            ]
            for pr in self.problems
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS) - 1)]
        lines = [
            "  ".join([*(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)), row[-1]])
            for row in rows
        ]
        return head + "\n\n" + "\n".join(line.rstrip() for line in lines) + "\n"


def latest_deep_run(conn: psycopg.Connection[Any], backup_set_id: str) -> str | None:
    """The id of the most recent deep validation stored for `backup_set_id`, if any."""
    row = conn.execute(
        "SELECT run_id FROM omni.validation_runs WHERE backup_set_id = %s AND deep "
        "ORDER BY started_at DESC LIMIT 1",
        (backup_set_id,),
    ).fetchone()
    return str(row[0]) if row else None


def store(conn: psycopg.Connection[Any], report: ValidationReport) -> str:
    """Write the run and its problems in one transaction; returns the run id."""
    if report.backup_set_id is None:
        raise RecoveryError(
            f"the validation of {report.location} cannot be stored: no backup_set_id could be read"
        )
    info = report.set_info
    with conn.transaction(), conn.cursor() as cur:
        if not info:
            cur.execute("SELECT 1 FROM omni.backup_sets WHERE backup_set_id = %s", (report.backup_set_id,))
            if cur.fetchone() is None:
                raise RecoveryError(
                    f"the validation of {report.location} cannot be stored: set {report.backup_set_id} is "
                    "not registered and no ISO has a readable backup_info to register it from"
                )
        else:
            cur.execute(
                "INSERT INTO omni.backup_sets (backup_set_id, created_at, omnicloud_version, "
                "source_environment, signer_key_id, iso_count) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (backup_set_id) DO NOTHING",
                (
                    report.backup_set_id,
                    info["created_at"],
                    info["omnicloud_version"],
                    Jsonb(info.get("source_environment") or {}),
                    report.signer_key_id,
                    info["iso_count"],
                ),
            )
        cur.execute(
            "INSERT INTO omni.validation_runs (run_id, backup_set_id, started_at, finished_at, deep, passed, "
            "manifests_sha256) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                report.run_id,
                report.backup_set_id,
                report.started_at,
                report.finished_at,
                report.deep and report.subset is None,
                report.passed,
                report.manifests_sha256,
            ),
        )
        cur.executemany(
            "INSERT INTO omni.validation_problems (run_id, severity, check_name, iso_name, path, expected, "
            "found, message) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    report.run_id,
                    *(_safe(v) for v in (pr.severity, pr.check, pr.iso, pr.path, pr.expected, pr.found)),
                    _safe(pr.message),
                )
                for pr in report.problems
            ],
        )
        audit(
            conn,
            "validation.store",
            report.backup_set_id,
            {
                "run_id": report.run_id,
                "deep": report.deep,
                "passed": report.passed,
                "problems": len(report.problems),
            },
        )
    return report.run_id


def _shown(value: str | None) -> str:
    """A cell of the text table: a set's content escaped (safe_text)."""
    return "-" if value is None else safe_text(value)


def _safe(value: str | None) -> str | None:
    """Text for a report or a database column: a set's content escaped (safe_text)."""
    return None if value is None else safe_text(value)


def _shown_json(problem: Problem) -> dict[str, Any]:
    return {k: _safe(v) if isinstance(v, str) else v for k, v in problem.to_json().items()}
