"""Have backups stopped? The age of the newest registered set against the age the operator allows.

How it works: `newest_set_age` reads the newest `created_at` (when the backup was taken, from its
backup_info) in omni.backup_sets; `freshness_problem` says, in one line, what is wrong (no set at
all, or the newest older than allowed) or None. The Dagster freshness job fails with that line.

What can go wrong: a set's created_at comes from the set itself; a clock far off on the backup side
makes a set look newer or older than it is. Sets registered by other workspaces sharing the
database count too (the database is the catalog).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from omni_recovery.db.connection import connect


def newest_set_age(url: str, now: datetime | None = None) -> tuple[str, timedelta] | None:
    """(set id, age) of the newest backup set in the catalog at `url`, or None when there is none."""
    with connect(url) as conn:
        row = conn.execute(
            "SELECT backup_set_id, created_at FROM omni.backup_sets ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
    if row is None:
        return None
    return str(row[0]), (now or datetime.now(UTC)) - row[1]


def freshness_problem(url: str, max_age: timedelta, now: datetime | None = None) -> str | None:
    """Why the newest set is too old (or missing), or None when a set newer than `max_age` exists."""
    newest = newest_set_age(url, now)
    if newest is None:
        return "no backup set is registered: backups have never arrived here"
    set_id, age = newest
    if age <= max_age:
        return None
    hours = age.total_seconds() / 3600
    return (
        f"backups have stopped: the newest set, {set_id}, was taken {hours:.1f} h ago, "
        f"more than the {max_age.total_seconds() / 3600:.1f} h allowed"
    )
