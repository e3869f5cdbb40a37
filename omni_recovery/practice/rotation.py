"""Rotating deep verification: every stored byte of every set read at least once every N runs.

How it works: `validate-isos --deep --subset K/N` hashes slice K of N of a set's stored bytes
(checker.deep.in_slice: whole files, in stored order, each in exactly one slice of about 1/N of
the bytes). Every slice run is recorded in omni.verification_slices. `--subset auto/N` asks
`next_slice` for the slice of N not tried yet, else the one tried longest ago, so N runs in a row
read every slice once whatever each run found. `coverage` says per set, for the latest N used,
the share of bytes whose latest check passed and the age of the oldest verified byte (a passing
whole deep validation counts for every slice); `status --verification` prints it.

What can go wrong: a slice that fails stays unverified until it passes again (its share drops,
its age grows) and the run fails naming the ISO and path; changing N starts a new rotation (the
slices differ). A slice run is stored as a not-deep validation, so it never clears a recovery.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from omni_recovery.backupset.signing import TrustedSigners
from omni_recovery.db.connection import connect
from omni_recovery.errors import RecoveryError
from omni_recovery.settings import Settings
from omni_recovery.validate.deep import Slice
from omni_recovery.validate.report import ValidationReport

_SUBSET = re.compile(r"^(auto|\d+)/(\d+)$")


def parse_subset(text: str) -> tuple[int | None, int]:
    """'K/N' → (K, N); 'auto/N' → (None, N). Refuses anything else in one line."""
    match = _SUBSET.match(text.strip())
    count = int(match.group(2)) if match else 0
    index = None if match is None or match.group(1) == "auto" else int(match.group(1))
    if match is None or not 1 <= count <= 10000 or (index is not None and not 1 <= index <= count):
        raise RecoveryError(f"--subset {text}: give K/N with 1 <= K <= N <= 10000, or auto/N")
    return index, count


def next_slice(conn: psycopg.Connection[Any], backup_set_id: str, count: int) -> int:
    """The slice of `count` never tried on the set, else the one whose latest try is the oldest."""
    tried = dict(
        conn.execute(
            "SELECT slice_index, max(verified_at) FROM omni.verification_slices "
            "WHERE backup_set_id = %s AND slice_count = %s GROUP BY slice_index",
            (backup_set_id, count),
        ).fetchall()
    )
    return min(range(1, count + 1), key=lambda k: (k in tried, tried.get(k), k))


def next_slice_of(location: str, count: int, settings: Settings) -> int:
    """`next_slice` for the set in the folder `location`, from the recovery database of `settings`."""
    from omni_recovery.db.schema import init_database
    from omni_recovery.db.server import database_url
    from omni_recovery.validate import list_set_folder
    from omni_recovery.validate.set_checks import set_identity

    backup_set_id = set_identity(list(list_set_folder(location)[0]))
    if backup_set_id is None:
        raise RecoveryError(f"{location}: no ISO of a backup set to verify a slice of")
    url = database_url(settings)
    init_database(url)
    with connect(url) as conn:
        return next_slice(conn, backup_set_id, count)


def verify_registered_sets(
    settings: Settings, trusted: TrustedSigners, passphrase: bytes, count: int
) -> list[ValidationReport]:
    """The next slice of `count` of every registered set, hashed, stored and recorded."""
    from omni_recovery.db.schema import init_database
    from omni_recovery.db.server import database_url
    from omni_recovery.register.registered_sets import registered_set_location, registry_entries
    from omni_recovery.validate import store, validate

    url = database_url(settings)
    init_database(url)
    set_ids = sorted({entry["backup_set_id"] for entry in registry_entries(settings.workspace).values()})
    reports = []
    for set_id in set_ids:
        _, location = registered_set_location(settings, set_id)
        with connect(url) as conn:
            chosen = Slice(next_slice(conn, set_id, count), count)
        report = validate(location, trusted, passphrase, deep=True, subset=chosen)
        with connect(url) as conn:
            store(conn, report)
            record_slice(conn, report)
        reports.append(report)
    return reports


def record_slice(conn: psycopg.Connection[Any], report: ValidationReport) -> None:
    """Record the slice a stored validation report (`report.subset`) hashed."""
    subset = report.subset
    assert subset is not None
    conn.execute(
        "INSERT INTO omni.verification_slices (run_id, backup_set_id, manifests_sha256, slice_index, "
        "slice_count, slice_bytes, set_bytes, passed, verified_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            report.run_id,
            report.backup_set_id,
            report.manifests_sha256,
            subset.index,
            subset.count,
            subset.slice_bytes,
            subset.set_bytes,
            report.passed,
            report.finished_at,
        ),
    )
    conn.commit()


@dataclass(frozen=True)
class Coverage:
    """How much of one set the rotation (over `slice_count` slices) has verified, and how long ago."""

    backup_set_id: str
    slice_count: int
    verified_bytes: int
    set_bytes: int
    oldest_verified_at: datetime | None  # None: some byte was never verified (or failed last time)

    @property
    def share(self) -> float:
        return self.verified_bytes / self.set_bytes if self.set_bytes else 0.0

    def line(self, now: datetime) -> str:
        if self.oldest_verified_at is None:
            age = "some bytes never verified (or their latest check failed)"
        else:
            age = f"oldest verified byte checked {_age(now - self.oldest_verified_at)} ago"
        return (
            f"{self.backup_set_id}  {self.share:.0%} of {self.set_bytes} bytes verified "
            f"(rotation over {self.slice_count} slices); {age}"
        )


# Per set under rotation, the latest try of each slice of the N used last, and the set's latest
# passing whole deep validation (it verified every slice at once).
_LATEST = """
WITH current AS (
    SELECT DISTINCT ON (backup_set_id) backup_set_id, slice_count, set_bytes
    FROM omni.verification_slices ORDER BY backup_set_id, verified_at DESC
)
SELECT DISTINCT ON (v.backup_set_id, v.slice_index) v.backup_set_id, c.slice_count, c.set_bytes,
       v.slice_index, v.slice_bytes, v.passed, v.verified_at,
       (SELECT max(r.finished_at) FROM omni.validation_runs r
        WHERE r.backup_set_id = v.backup_set_id AND r.deep AND r.passed) AS whole_pass
FROM omni.verification_slices v JOIN current c USING (backup_set_id, slice_count)
ORDER BY v.backup_set_id, v.slice_index, v.verified_at DESC
"""


def coverage(conn: psycopg.Connection[Any]) -> list[Coverage]:
    """Per set under rotation: the share of bytes verified and when its oldest verified byte was."""
    by_set: dict[str, list[tuple[Any, ...]]] = {}
    for row in conn.execute(_LATEST).fetchall():
        by_set.setdefault(row[0], []).append(row)
    return [_set_coverage(rows) for _, rows in sorted(by_set.items())]


def _set_coverage(rows: list[tuple[Any, ...]]) -> Coverage:
    set_id, count, set_bytes, whole = rows[0][0], rows[0][1], rows[0][2], rows[0][7]
    times: list[datetime | None] = []
    verified = 0
    if len(rows) < count:  # slices never tried: verified only by a whole deep validation
        times.append(whole)
        verified += (set_bytes - sum(row[4] for row in rows)) if whole else 0
    for row in rows:
        size, passed, at = row[4], row[5], row[6]
        when = _verified_at(passed, at, whole)
        times.append(when)
        verified += size if when else 0
    oldest = None if None in times else min(t for t in times if t is not None)
    return Coverage(set_id, count, verified, set_bytes, oldest)


def _verified_at(passed: bool, tried_at: datetime, whole_pass: datetime | None) -> datetime | None:
    """When a slice was last verified: its latest try if it passed, or a later whole deep validation."""
    if whole_pass is not None and (passed or whole_pass > tried_at):
        return max(tried_at, whole_pass) if passed else whole_pass
    return tried_at if passed else None


def _age(delta: Any) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
