"""One rule for a partial restore: the command line and a UI launch of one application partition restore
the same applications (transforms.plan.partial_restore, with the run's needs), and every place that names
them agrees: the steps run, the partitions materialised, the runs' tags, the assets' metadata and the
steps the progress display counts.

The application is one where the rule that used to sit beside it (every application and volume reached
through `depends_on`) named more applications: the plan's ordering between application tiers is not a
hard dependency, so it must not pull those applications in."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetKey

from omni_recovery.db.connection import connect
from omni_recovery.envstate.folder import environment_from_folder
from omni_recovery.execute.options import ExecuteOptions
from omni_recovery.execute.progress import planned_totals, read_progress
from omni_recovery.settings import load_settings
from pipelines.recovery_resource import HARD_DEPENDENCIES_TAG
from pipelines.recovery_runner import execute_recovery
from pipelines.runner import dagster_instance
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.test_recovery import (  # noqa: F401
    Setup,
    latest_run,
    make_setup,
    restored_tree,
    ui_launch_of_one_application,
    validated,
    workspace,
)
from transforms.plan import PartialRestore, Plan, partial_restore, step_needs, without_gates


def depends_on_closure(plan: Plan, application: str) -> set[str]:
    """The applications the former rule chose: every application and volume reached through depends_on,
    in the plan's form of that time (no gate steps: each step depended on the previous phase's last)."""
    steps = {s.id: s for s in without_gates(plan).steps}
    seen: set[str] = set()
    todo = [f"application/{application}"]
    while todo:
        step_id = todo.pop()
        if step_id not in seen:
            seen.add(step_id)
            todo += [d for d in steps[step_id].depends_on if d.startswith(("application/", "volume/"))]
    return {s.split("/")[1] for s in seen if s.startswith("application/")}


def applications_of(partial: PartialRestore) -> set[str]:
    return {s.split("/")[1] for s in partial.steps if s.startswith(("application/", "volume/"))}


def chosen_where_the_rules_differed(setup: Setup, demo: DemoSet) -> tuple[str, PartialRestore]:
    needs = step_needs(setup.plan, environment_from_folder(demo.env))
    apps = sorted(s.id.split("/", 1)[1] for s in setup.plan.steps if s.id.startswith("application/"))
    for app in apps:
        partial = partial_restore(setup.plan, [app], needs)
        if applications_of(partial) != {app} and applications_of(partial) != depends_on_closure(
            setup.plan, app
        ):
            return app, partial
    pytest.fail("the demo has no application whose hard dependencies differ from its depends_on closure")


def test_the_command_line_and_a_ui_launch_restore_the_same_applications_for_a_partial_restore(
    validated: DemoSet,  # noqa: F811
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli = make_setup(validated, tmp_path / "cli")
    chosen, partial = chosen_where_the_rules_differed(cli, validated)
    expected = applications_of(partial)
    added = sorted(expected - {chosen})
    assert added and expected != depends_on_closure(cli.plan, chosen)

    options = ExecuteOptions(cli.plan_path, applications=(chosen,))
    summary = execute_recovery(load_settings(workspace), options, PASSPHRASE)
    assert set(summary.applications) == expected, "the partitions materialised"
    run = latest_run(database_url)
    ran = {s.step_id for s in run.steps}
    gates = {s.id for s in cli.plan.steps if s.is_gate and s.phase in {cli.plan.step(r).phase for r in ran}}
    assert ran == partial.steps | {"report/recovery"} | gates, "with the gates of the phases it runs"
    with connect(database_url) as conn:  # the progress display counts what the run selected
        totals = planned_totals(conn, run.run_id)
        assert set(totals.work) == partial.steps | {"report/recovery"}
        assert read_progress(conn, run.run_id, totals).steps_done == totals.steps
    instance = dagster_instance(load_settings(workspace))
    tags = {instance.get_run_by_id(r).tags.get(HARD_DEPENDENCIES_TAG) for r in summary.dagster_runs}  # type: ignore[union-attr]
    assert tags == {",".join(added)}
    restored = restored_tree(cli.plan, tmp_path / "cli-gathered")
    assert {p.split("/")[1] for p in restored if p.startswith("applications/")} == expected

    ui = make_setup(validated, tmp_path / "ui")
    monkeypatch.setenv("OMNI_RECOVERY_PASSPHRASE", PASSPHRASE.decode())
    ephemeral, result = ui_launch_of_one_application(workspace, ui.plan_path, chosen)
    assert result.success
    assert ephemeral.get_run_by_id(result.run_id).tags[HARD_DEPENDENCIES_TAG] == ",".join(added)
    for asset in ("restored_volumes", "restored_applications"):
        event = ephemeral.get_latest_materialization_event(AssetKey(asset))
        assert event is not None and event.asset_materialization is not None
        assert event.asset_materialization.metadata["hard_dependencies_added"].value == added
    ui_restored = restored_tree(ui.plan, tmp_path / "ui-gathered")
    assert {p.split("/")[1] for p in ui_restored if p.startswith("applications/")} == expected
    volumes = {p for p in restored if p.startswith(("applications/", "volumes/"))}
    assert {p for p in ui_restored if p.startswith(("applications/", "volumes/"))} == volumes
