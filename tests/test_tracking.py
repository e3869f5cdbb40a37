"""Recovery tracking on a real PostgreSQL: resume continues the run, files and steps are not duplicated."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from omni_recovery.cli import main
from omni_recovery.db.connection import connect
from omni_recovery.execute.run_history import recent_runs, step_attempts
from omni_recovery.execute.run_lock import RunBusy, run_is_held
from omni_recovery.execute.tracking import FAILED, SUCCEEDED, RecoveryTracker
from omni_recovery.settings import DATABASE_URL_ENV
from tests.test_recovery import wait_until

MiB = 2**20


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    connection = connect(database_url)
    connection.execute(
        "INSERT INTO omni.backup_sets (backup_set_id, created_at, omnicloud_version, iso_count) "
        "VALUES ('track-set', now(), '4.2.1', 6) ON CONFLICT DO NOTHING"
    )
    connection.execute(
        "INSERT INTO omni.recovery_plans (plan_id, backup_set_id, adaptation_mode, plan_yaml, plan_sha256) "
        "VALUES ('plan-a', 'track-set', 'basic', 'steps: []', repeat('a', 64)) ON CONFLICT DO NOTHING"
    )
    connection.execute("DELETE FROM omni.recovery_runs WHERE plan_id = 'plan-a'")
    connection.commit()
    yield connection
    connection.close()


def test_a_killed_run_is_resumed_not_restarted(conn: psycopg.Connection):
    first = RecoveryTracker.start_or_resume(conn, "plan-a", {"parallel_factor": 2})
    first.step_started("directors:d1", "directors", "director:d1")
    first.step_finished("directors:d1", SUCCEEDED, 1234, {"files": 3})
    first.step_started("volumes:billing", "volumes", "volume:billing/pgdata")
    first.files_verified("node-a", [("a/x", "f" * 64, 10), ("a/y", None, 0)])
    # The process dies here; the next execute-plan of the same plan continues the same run.
    again = RecoveryTracker.start_or_resume(conn, "plan-a", {"parallel_factor": 2})
    assert again.run_id == first.run_id
    assert again.succeeded_steps() == {"directors:d1"}
    assert again.verified_files("node-a") == {"a/x": ("f" * 64, 10), "a/y": (None, 0)}
    again.files_verified("node-a", [("a/x", "f" * 64, 10)])
    again.step_started("volumes:billing", "volumes", "volume:billing/pgdata")
    again.step_finished("volumes:billing", FAILED, 0, {"error": "disk full"})
    again.finish(FAILED)

    [run] = [r for r in recent_runs(conn) if r.run_id == first.run_id]
    steps = {s.step_id: s for s in run.steps}
    assert run.status == FAILED and run.finished_at is not None
    assert steps["volumes:billing"].attempts == 2 and steps["volumes:billing"].detail == {
        "error": "disk full"
    }
    assert steps["directors:d1"].bytes_written == 1234
    count = conn.execute(
        "SELECT count(*) FROM omni.restored_files WHERE run_id = %s", (first.run_id,)
    ).fetchone()
    assert count == (2,)
    audited = conn.execute(
        "SELECT operation FROM omni.audit_log WHERE subject = %s ORDER BY id", (first.run_id,)
    ).fetchall()
    assert [a[0] for a in audited] == ["recovery.start", "recovery.resume", "recovery.failed"]
    conn.commit()

    fresh = RecoveryTracker.start_or_resume(conn, "plan-a", {})
    assert fresh.run_id != first.run_id, "a finished run is never reopened"


def test_every_attempt_of_a_step_is_kept_with_its_outcome_error_and_worker(conn: psycopg.Connection):
    """A retried step, a step in flight when its process died, and the resumed run that finished it:
    the step row keeps the latest attempt, step_attempts keeps every one."""
    first = RecoveryTracker.start_or_resume(conn, "plan-a", {})
    first.step_started("volume/a", "volumes", "volume:a")
    first.step_finished("volume/a", FAILED, 0, {"error": "disk full on pool-1"})
    first.step_started("volume/a", "volumes", "volume:a", worker="worker-7")
    first.step_started("volume/b", "volumes", "volume:b")
    # the process dies with both steps in flight; the resumed run runs them again
    again = RecoveryTracker.start_or_resume(conn, "plan-a", {})
    for step_id in ("volume/a", "volume/b"):
        again.step_started(step_id, "volumes", step_id.replace("/", ":"))
        again.step_finished(step_id, SUCCEEDED, 10, {"files": 1})

    me = f"{socket.gethostname()}:{os.getpid()}"
    found = [(a.step_id, a.attempt, a.outcome, a.error, a.worker) for a in step_attempts(conn, first.run_id)]
    assert sorted(found) == [
        ("volume/a", 1, FAILED, "disk full on pool-1", me),
        ("volume/a", 2, None, None, "worker-7"),
        ("volume/a", 3, SUCCEEDED, None, me),
        ("volume/b", 1, None, None, me),
        ("volume/b", 2, SUCCEEDED, None, me),
    ]
    finished = {(a.step_id, a.attempt): a.finished_at for a in step_attempts(conn, first.run_id)}
    assert finished[("volume/a", 2)] is None and finished[("volume/a", 3)] is not None
    [run] = [r for r in recent_runs(conn) if r.run_id == first.run_id]
    assert {s.step_id: (s.status, s.attempts) for s in run.steps} == {
        "volume/a": (SUCCEEDED, 3),
        "volume/b": (SUCCEEDED, 2),
    }


def test_a_second_process_on_the_same_run_is_refused(conn: psycopg.Connection, database_url: str):
    tracker = RecoveryTracker.start_or_resume(conn, "plan-a", {})
    other = connect(database_url)

    def trail() -> list[tuple[Any, ...]]:
        rows = other.execute(
            "SELECT r.status, r.finished_at, (SELECT count(*) FROM omni.audit_log) "
            "FROM omni.recovery_runs r WHERE r.plan_id = 'plan-a'"
        ).fetchall()
        other.commit()
        return rows

    try:
        before = trail()
        holder = (
            f"run {tracker.run_id} is being executed by process {os.getpid()} on host {socket.gethostname()}"
        )
        with pytest.raises(RunBusy, match=rf"^{holder} since \d{{4}}-"):
            RecoveryTracker.start_or_resume(other, "plan-a", {})
        assert trail() == before, "the refused process changed no run and wrote no audit row"
        assert run_is_held(other, "plan-a"), "seen from another connection"
        assert not run_is_held(other, "plan-b")
        tracker.release_run_lock("plan-a")
        assert not run_is_held(other, "plan-a"), "the lock went with its holder"
        assert RecoveryTracker.start_or_resume(other, "plan-a", {}).run_id == tracker.run_id
    finally:
        other.close()
    # The server lets the lock go as the closed connection's backend exits, just after close() returns.
    wait_until(lambda: not run_is_held(conn, "plan-a"), "a closed connection to hold nothing")


def test_a_running_step_records_its_progress_and_its_end_the_final_count(
    conn: psycopg.Connection, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from omni_recovery.execute.steps import restore

    tracker = RecoveryTracker.start_or_resume(conn, "plan-a", {})
    tracker.step_started("volume:a/v", "volumes", "volume:a/v")
    heard: list[tuple[str, int]] = []
    monkeypatch.setattr(restore, "STEP_PROGRESS_SECONDS", 0.0)
    progress = restore.StepProgress(tracker, "volume:a/v", lambda *heard_now: heard.append(heard_now))
    for phase, amount in [("restore", 2 * MiB), ("skip", 7), ("restore", MiB)]:
        progress(phase, amount)

    def step() -> tuple[str, int]:
        [run] = [r for r in recent_runs(conn) if r.run_id == tracker.run_id]
        [record] = run.steps
        return record.status, record.bytes_written

    assert heard == [("restore", 2 * MiB), ("skip", 7), ("restore", MiB)], "the caller's callback hears all"
    assert step() == ("running", 3 * MiB), "bytes restored so far, skipped files not counted"
    monkeypatch.setenv(DATABASE_URL_ENV, database_url)
    # held since start_or_resume, as by execute-plan while it runs
    shown = CliRunner().invoke(main, ["status", "--workspace", str(tmp_path), "--runs", "5"]).output
    assert "running    volume:a/v (attempt 1) 3.0 MiB so far" in shown, shown
    tracker.release_run_lock("plan-a")
    shown = CliRunner().invoke(main, ["status", "--workspace", str(tmp_path), "--runs", "5"]).output
    assert "stopped    volume:a/v (attempt 1) 3.0 MiB so far" in shown, "no process holds the run any more"
    tracker.step_finished("volume:a/v", SUCCEEDED, 4 * MiB)
    tracker.step_progress("volume:a/v", 10)
    assert step() == ("succeeded", 4 * MiB), "a finished step keeps its final count"
    audited = conn.execute(
        "SELECT count(*) FROM omni.audit_log WHERE subject = 'volume:a/v' AND operation LIKE 'step.%'"
    ).fetchone()
    assert audited == (2,), "start and end are operations; progress is not"


def test_verified_files_are_read_once_and_follow_what_the_run_records(conn: psycopg.Connection):
    tracker = RecoveryTracker.start_or_resume(conn, "plan-a", {})
    tracker.files_verified("node-a", [("a/x", "f" * 64, 10)])
    assert tracker.verified_files("node-b") == {}
    answer = tracker.verified_files("node-a")
    answer["a/forged"] = ("0" * 64, 1)  # the caller's copy
    tracker.files_verified("node-a", [("a/y", "e" * 64, 20), ("a/x", "d" * 64, 99)])
    tracker.files_verified("node-b", [("b/z", None, 0)])
    expected = {"node-a": {"a/x": ("f" * 64, 10), "a/y": ("e" * 64, 20)}, "node-b": {"b/z": (None, 0)}}
    assert {t: tracker.verified_files(t) for t in expected} == expected
    fresh = RecoveryTracker.start_or_resume(conn, "plan-a", {})  # what the table holds agrees
    assert {t: fresh.verified_files(t) for t in expected} == expected


def test_verified_files_are_recorded_on_an_autocommit_connection_too(conn: psycopg.Connection):
    """The batch goes through a temporary table emptied at commit: on a connection that commits each
    statement by itself, the rows must still reach the table."""
    conn.autocommit = True
    tracker = RecoveryTracker.start_or_resume(conn, "plan-a", {})
    tracker.files_verified("node-a", [("a/x", "f" * 64, 10), ("a/y", None, 0)])
    rows = conn.execute(
        "SELECT path, sha256, size FROM omni.restored_files WHERE run_id = %s ORDER BY path",
        (tracker.run_id,),
    ).fetchall()
    assert rows == [("a/x", "f" * 64, 10), ("a/y", None, 0)]
