"""Gate steps in a real recovery: a plan with gates and the same plan in the form written before
them (each step depending on every last step of the phase before) recover the same tree, each in
dependency order; gates are recorded like any step but counted neither in progress nor in the report.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from omni_recovery.db.connection import connect
from omni_recovery.db.schema import init_database
from omni_recovery.execute.options import ExecuteOptions
from omni_recovery.execute.progress import planned_totals, read_progress
from omni_recovery.execute.tracking import SUCCEEDED
from omni_recovery.plan.generate import write_plan_files
from omni_recovery.settings import load_settings
from pipelines.recovery_runner import execute_recovery
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.conftest import PostgresForTests
from tests.test_parallel_steps import assert_dependencies_ended_first, comparable, run_steps
from tests.test_recovery import make_setup, restored_tree, validated, workspace  # noqa: F401
from transforms.plan import plan_from_yaml, without_gates


@pytest.fixture(scope="module")
def database_url(postgres_server: PostgresForTests) -> Iterator[str]:
    """This module's own recovery database: other modules count the shared demo set's plans."""
    url = postgres_server.create_database("omni_plan_gates")
    init_database(url)
    yield url
    postgres_server.drop_database(url)


def test_a_plan_written_before_gates_recovers_what_the_gated_plan_does(
    validated: DemoSet,  # noqa: F811
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    database_url: str,
) -> None:
    setup = make_setup(validated, tmp_path / "recovery")
    gates = {s.id for s in setup.plan.steps if s.is_gate}
    assert len(gates) >= 10
    summary = execute_recovery(
        load_settings(workspace), ExecuteOptions(setup.plan_path, parallel_factor=3), PASSPHRASE
    )
    ran = run_steps(database_url, summary.run_id)
    assert all(ran[g].status == SUCCEEDED for g in gates), "every gate passed and recorded"
    assert_dependencies_ended_first({s.id: s.depends_on for s in setup.plan.steps}, ran)
    with connect(database_url) as conn:
        totals = planned_totals(conn, summary.run_id)
        progress = read_progress(conn, summary.run_id, totals)
    assert totals.steps == len(setup.plan.steps) - len(gates)
    assert progress.steps_done == totals.steps - 1, "all but the post-recovery backup (no signing key)"
    assert summary.report and "gate/" not in Path(summary.report).read_text()
    gated_tree = comparable(restored_tree(setup.plan, tmp_path / "gated-tree"))

    shutil.rmtree(setup.folder / "infra")
    old_form = without_gates(setup.plan)
    write_plan_files(old_form, setup.plan_path)
    assert plan_from_yaml(setup.plan_path.read_text()) == old_form
    again = execute_recovery(
        load_settings(workspace), ExecuteOptions(setup.plan_path, parallel_factor=3), PASSPHRASE
    )
    ran_again = run_steps(database_url, again.run_id)
    assert set(ran_again) == {s.id for s in old_form.steps} and not gates & set(ran_again)
    assert all(s.status == SUCCEEDED for s in ran_again.values() if not s.step_id.startswith("backup/"))
    assert_dependencies_ended_first({s.id: s.depends_on for s in old_form.steps}, ran_again)
    old_tree = comparable(restored_tree(old_form, tmp_path / "old-tree"))
    assert len(gated_tree) > 100 and old_tree == gated_tree
