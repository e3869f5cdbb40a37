"""The Dagster UI drives a partial restore: a backfill of two application partitions launched through
the webserver's own GraphQL API (`launchPartitionBackfill`) of a real `dagster dev`, configured with
nothing but the plan. The runs, their tags and the restored files are checked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from omni_recovery.db.connection import connect
from omni_recovery.db.schema import init_database
from omni_recovery.envstate.folder import environment_from_folder
from omni_recovery.execute.selection import applications_with_dependencies
from omni_recovery.plan.generate import record_plan_source, recorded_plan_source
from omni_recovery.settings import DATABASE_URL_ENV, load_settings
from omni_recovery.validate import store, validate
from pipelines.recovery_resource import HARD_DEPENDENCIES_TAG
from pipelines.runner import dagster_instance
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.ports import listens, unused_port
from tests.test_recovery import make_setup, restored_tree, validated, workspace  # noqa: F401
from transforms.plan import step_needs

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def graphql(port: int, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer: dict[str, Any] = json.loads(response.read())
    assert "errors" not in answer, answer
    return answer["data"]


def wait_for(condition: Any, seconds: float, what: str) -> Any:
    """`condition()` once it is truthy, polled until a deadline."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"{what} within {seconds} s")


@pytest.fixture
def own_database(
    validated: DemoSet,  # noqa: F811
    workspace: Path,  # noqa: F811
    fresh_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """A database of this test's own (the plans it stores stay out of the session's), holding the set's
    deep validation, for the test and the webserver it starts."""
    monkeypatch.setenv(DATABASE_URL_ENV, fresh_database_url)
    report = validate(str(validated.output), validated.trusted, PASSPHRASE, deep=True)
    init_database(fresh_database_url)
    with connect(fresh_database_url) as conn:
        store(conn, report)
    return fresh_database_url


@pytest.fixture
def webserver(
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    own_database: str,
) -> Iterator[tuple[int, DagsterInstance]]:
    """`dagster dev` on a free loopback port, in a folder that is not the workspace and without
    OMNI_RECOVERY_WORKSPACE: the workspace can only come from the plan."""
    instance = dagster_instance(load_settings(workspace))
    port = unused_port()
    env = {k: v for k, v in os.environ.items() if k != "OMNI_RECOVERY_WORKSPACE"}
    env.update(
        DAGSTER_HOME=str(load_settings(workspace).dagster_home),
        OMNI_RECOVERY_PASSPHRASE=PASSPHRASE.decode(),
        PYTHONPATH=str(ROOT),
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    dagster = Path(sys.executable).parent / "dagster"
    command = [str(dagster), "dev", "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]
    log = (tmp_path / "dagster-dev.log").open("wb")

    def defaults() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    proc = subprocess.Popen(
        command,
        cwd=elsewhere,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=defaults,
        start_new_session=True,
    )
    try:
        # its own webserver (not another process that took the port) answers; it failing stops the wait
        wait_for(
            lambda: proc.poll() is not None or (listens(proc.pid, port) and _answers(port)),
            180,
            "dagster dev",
        )
        assert proc.poll() is None, (tmp_path / "dagster-dev.log").read_text(errors="replace")[-4000:]
        yield port, instance
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _answers(port: int) -> bool:
    try:
        return "version" in graphql(port, "{ version }")
    except (OSError, urllib.error.URLError):
        return False


def test_a_backfill_of_two_applications_from_the_ui_needs_only_the_plan_and_names_their_dependencies(
    validated: DemoSet,  # noqa: F811
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    webserver: tuple[int, DagsterInstance],
) -> None:
    port, instance = webserver
    setup = make_setup(validated, tmp_path / "s")
    source = recorded_plan_source(setup.plan_path)
    record_plan_source(setup.plan_path, source["location"], Path(source["inventory"]), workspace)
    apps = sorted(s.id.split("/", 1)[1] for s in setup.plan.steps if s.id.startswith("application/"))
    needs = step_needs(setup.plan, environment_from_folder(validated.env))
    with_deps = next(a for a in apps if len(applications_with_dependencies(setup.plan, [a], needs)) > 1)
    other = next(
        a
        for a in apps
        if a != with_deps and a not in applications_with_dependencies(setup.plan, [with_deps], needs)
    )
    chosen = sorted([with_deps, other])
    expected = set(applications_with_dependencies(setup.plan, chosen, needs))
    assert expected > set(chosen)
    instance.add_dynamic_partitions("applications", chosen)

    params = {
        "partitionNames": chosen,
        "assetSelection": [{"path": ["restored_volumes"]}, {"path": ["restored_applications"]}],
        "runConfigData": {"resources": {"recovery": {"config": {"plan_path": str(setup.plan_path)}}}},
    }
    launched = graphql(port, LAUNCH, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill = launched["backfillId"]

    def finished_runs() -> list[Any]:
        runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill}))
        done = instance.get_backfill(backfill)
        settled = done is not None and done.status.value not in ("REQUESTED",)
        return list(runs) if settled and runs and all(r.status in FINISHED for r in runs) else []

    runs = wait_for(finished_runs, 480, "the backfill's runs finished")
    log = (tmp_path / "dagster-dev.log").read_text(errors="replace")[-4000:]
    assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS] * len(runs), log
    added = sorted(expected - set(chosen))
    assert [r.tags.get(HARD_DEPENDENCIES_TAG) for r in runs] == [",".join(added)] * len(runs)
    volumes = instance.fetch_materializations(AssetKey("restored_volumes"), limit=1).records
    metadata = volumes[0].asset_materialization.metadata  # type: ignore[union-attr]
    assert metadata["hard_dependencies_added"].value == added
    restored = restored_tree(setup.plan, tmp_path / "gathered")
    assert {p.split("/")[1] for p in restored if p.startswith("applications/")} == expected
    assert not [p for p in restored if not p.startswith(("applications/", "volumes/"))]
