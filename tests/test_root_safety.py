"""Nothing is written outside the inventory's roots, and a refused command opens no recovery run.

Each case drives the real command line against a real demo set validated into the embedded
PostgreSQL: a plan edited by hand, an inventory with a system folder or two roots that are one
folder through a symbolic link, an unknown application, a signing key that is no key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from dagster import DagsterInstance

from assets.restore import restored_applications, restored_directors
from omni_recovery.adapt.inventory import inventory_to_yaml, load_inventory
from omni_recovery.cli import main
from omni_recovery.db.connection import connect
from omni_recovery.envstate.folder import environment_from_folder
from omni_recovery.settings import load_settings
from pipelines.definitions import build_definitions
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.builders import same_shaped_nodes, write_inventory
from tests.test_recovery import Setup, make_setup, validated, workspace  # noqa: F401

Edit = Callable[[str, Path], str]


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"OMNI_RECOVERY_PASSPHRASE": PASSPHRASE.decode()})


def execute_plan(setup: Setup, folder: Path, *extra: str) -> Result:
    return run_cli("execute-plan", "--plan", str(setup.plan_path), "--workspace", str(folder), *extra)


def run_count(database_url: str) -> int:
    with connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM omni.recovery_runs").fetchone()
    assert row is not None
    return int(row[0])


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# -- a plan edited by hand ---------------------------------------------------------------------------


# The plan's lines: `{name: n, ..., root: 'file:///…/infra/targets/n', ...}` and so on.
NODE_ROOT = r"root: 'file://[^']*/infra/targets/[^']*'"
POOL_ROOT = r"root: 'file://[^']*/infra/storage/\w+'"
VOLUME_PATH = r"new_path: 'file://([^']*/infra/storage/\w+)/volumes/[^']*'"


def node_root_elsewhere(text: str, elsewhere: Path) -> str:
    return re.sub(NODE_ROOT, f"root: 'file://{elsewhere}'", text, count=1)


def node_root_through_a_link(text: str, elsewhere: Path) -> str:
    link = elsewhere.parent / "looks-like-a-target"
    link.symlink_to(elsewhere)
    return re.sub(NODE_ROOT, f"root: 'file://{link}'", text, count=1)


def pool_root_elsewhere(text: str, elsewhere: Path) -> str:
    """A pool moved, its paths with it (so the plan agrees with itself, not with the inventory)."""
    found = re.search(POOL_ROOT, text)
    assert found is not None
    return text.replace(found.group(0).removeprefix("root: '").rstrip("'"), f"file://{elsewhere}")


def path_out_of_its_pool(text: str, elsewhere: Path) -> str:
    # Inside the pool's root by its text; outside once `..` is taken into account.
    return re.sub(VOLUME_PATH, rf"new_path: 'file://\1/../../../{elsewhere.name}/v'", text, count=1)


def path_through_a_link(text: str, elsewhere: Path) -> str:
    found = re.search(VOLUME_PATH, text)
    assert found is not None
    pool = Path(found.group(1))
    pool.mkdir(parents=True, exist_ok=True)
    (pool / "outside").symlink_to(elsewhere)
    return text.replace(found.group(0), f"new_path: 'file://{pool}/outside/v'", 1)


@pytest.mark.parametrize(
    "edit",
    [
        node_root_elsewhere,
        node_root_through_a_link,
        pool_root_elsewhere,
        path_out_of_its_pool,
        path_through_a_link,
    ],
    ids=lambda edit: edit.__name__,
)
def test_a_plan_naming_a_root_or_path_outside_the_inventory_is_refused_before_any_byte(
    validated: DemoSet,  # noqa: F811
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    database_url: str,
    edit: Edit,
):
    setup = make_setup(validated, tmp_path / "s")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "environment.yaml").write_text("the operator's own file\n")
    text = setup.plan_path.read_text()
    edited = edit(text, elsewhere)
    assert edited != text
    setup.plan_path.write_text(edited)
    line = next(
        i for i, (a, b) in enumerate(zip(text.splitlines(), edited.splitlines(), strict=True), 1) if a != b
    )
    runs = run_count(database_url)

    result = execute_plan(setup, workspace)

    assert result.exit_code != 0
    assert re.search(rf"recovery-plan\.yaml:{line}: .*(inventory's root|outside storage)", result.output), (
        result.output
    )
    assert "Traceback" not in result.output
    assert files_under(elsewhere) == {"environment.yaml": b"the operator's own file\n"}
    assert not (tmp_path / "s" / "infra").exists() or not files_under(tmp_path / "s" / "infra")
    assert run_count(database_url) == runs


# -- the inventory's roots ---------------------------------------------------------------------------


def inventory_with_roots(demo: DemoSet, folder: Path, node_roots: list[str]) -> Path:
    """A valid same-shaped inventory for `demo` in `folder`, its first nodes' roots replaced."""
    folder.mkdir(parents=True, exist_ok=True)
    nodes = same_shaped_nodes(environment_from_folder(demo.env))
    inventory = write_inventory(folder, nodes, f"file://{folder}/infra")
    text = inventory.read_text()
    for root in node_roots:
        text = re.sub(r"root: \S+/infra/targets/\S+", f"root: {root}", text, count=1)
    inventory.write_text(text)
    return inventory


@pytest.mark.parametrize(
    "root",
    ["file:///etc", "/usr/local/omni", "file:///var/", "/srv/omni/../../boot", "link-to-etc", "/dev/shm"],
)
def test_a_system_folder_as_root_is_refused_unless_allowed(
    validated: DemoSet,  # noqa: F811
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    root: str,
):
    if root == "link-to-etc":
        (tmp_path / "link").symlink_to("/etc")
        root = f"file://{tmp_path}/link"
    inventory = inventory_with_roots(validated, tmp_path, [root])
    line = line_of(inventory.read_text(), f"root: {root}")
    plan = tmp_path / "edited-plan.yaml"
    args = ["--path", str(validated.output), "--inventory", str(inventory), "-o", str(plan), "--no-store"]

    refused = run_cli("plan-generate", *args, "--workspace", str(workspace))

    assert refused.exit_code != 0 and not plan.exists()
    assert re.search(rf"inventory\.yaml:{line}: node \S+: root .* system folder /\w*", refused.output)
    assert "--allow-system-root" in refused.output and "Traceback" not in refused.output
    allowed = run_cli("plan-generate", *args, "--allow-system-root", "--workspace", str(workspace))
    assert allowed.exit_code == 0, allowed.output


def test_execute_plan_refuses_a_system_root_recorded_with_its_plan(
    validated: DemoSet,  # noqa: F811
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    database_url: str,
):
    """The inventory is checked again when the plan runs: one made (allowed) for a system folder is
    refused unless execute-plan is allowed too."""
    root = "file:///proc/omni-recovery-test"  # where nothing can be written, whatever happens
    inventory = inventory_with_roots(validated, tmp_path, [root])
    plan = tmp_path / "plan.yaml"
    args = ["--path", str(validated.output), "--inventory", str(inventory), "-o", str(plan), "--no-store"]
    made = run_cli("plan-generate", *args, "--allow-system-root", "--workspace", str(workspace))
    assert made.exit_code == 0, made.output
    runs = run_count(database_url)

    result = run_cli("execute-plan", "--plan", str(plan), "--workspace", str(workspace))

    assert result.exit_code != 0 and "is or lies in the system folder /proc" in result.output, result.output
    assert run_count(database_url) == runs


def test_roots_that_are_one_folder_through_a_symbolic_link_are_refused(
    validated: DemoSet,  # noqa: F811
    tmp_path: Path,
    workspace: Path,  # noqa: F811
):
    (tmp_path / "one").mkdir()
    (tmp_path / "same").symlink_to(tmp_path / "one")
    (tmp_path / "inside").symlink_to(tmp_path / "one" / "sub")
    roots = [f"file://{tmp_path}/one", f"file://{tmp_path}/same/", f"{tmp_path}/inside"]
    inventory = inventory_with_roots(validated, tmp_path / "s", roots)
    plan = tmp_path / "plan.yaml"

    result = run_cli(
        "plan-generate",
        *("--path", str(validated.output), "--inventory", str(inventory), "-o", str(plan), "--no-store"),
        *("--workspace", str(workspace)),
    )

    assert result.exit_code != 0 and not plan.exists()
    assert "is the same folder as the root of node" in result.output, result.output
    assert "lies inside the root of node" in result.output, result.output


def test_an_inventory_given_to_execute_plan_must_be_the_plan_s(
    validated: DemoSet,  # noqa: F811
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    database_url: str,
):
    """--inventory of another infrastructure: the plan's roots are not its roots."""
    setup = make_setup(validated, tmp_path / "s")
    other = tmp_path / "other.yaml"
    moved = load_inventory(setup.folder / "inventory.yaml")
    other.write_text(inventory_to_yaml(moved).replace(f"{setup.folder}/infra", f"{tmp_path}/other-infra"))
    runs = run_count(database_url)

    result = execute_plan(setup, workspace, "--inventory", str(other))

    assert result.exit_code != 0 and "is not the inventory's root" in result.output, result.output
    assert not (tmp_path / "other-infra").exists() and not (tmp_path / "s" / "infra").exists()
    assert run_count(database_url) == runs


# -- refusals open no run ----------------------------------------------------------------------------


def bad_signing_key(folder: Path) -> list[str]:
    key = folder / "not-a-key.pem"
    key.write_text("not a key\n")
    return ["--signing-key", str(key)]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (lambda folder: ["--applications", "biling"], "unknown application(s) biling"),
        (lambda folder: ["--applications", "billing,nope"], "unknown application(s) nope"),
        (bad_signing_key, "cannot load an Ed25519 private key"),
        (lambda folder: ["--adaptation-mode", "advanced"], "generated with --adaptation-mode basic"),
    ],
    ids=["typo", "one-unknown-of-two", "signing-key", "adaptation-mode"],
)
def test_a_refused_execute_plan_opens_no_run(
    validated: DemoSet,  # noqa: F811
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    database_url: str,
    arguments: Callable[[Path], list[str]],
    message: str,
):
    setup = make_setup(validated, tmp_path / "s")
    runs = run_count(database_url)

    result = execute_plan(setup, workspace, *arguments(tmp_path))

    assert result.exit_code != 0 and message in result.output, result.output
    assert run_count(database_url) == runs
    assert not (tmp_path / "s" / "infra").exists()


def failed_ui_launch(setup: Setup, folder: Path, instance: DagsterInstance, **launch: Any) -> str:
    """The `restore` job run as the Dagster UI launches it (the `recovery` resource configured with the
    plan, the passphrase from the environment), which must fail: the message of its failure."""
    job = build_definitions(load_settings(folder)).resolve_job_def("restore")
    config = {"workspace": str(folder), "plan_path": str(setup.plan_path)}
    launched = job.execute_in_process(
        instance=instance,
        run_config={"resources": {"recovery": {"config": config}}},
        raise_on_error=False,
        **launch,
    )
    assert not launched.success
    return str(next(e for e in launched.all_events if e.is_failure).event_specific_data)


def test_deploy_directors_and_the_ui_refuse_an_edited_root_as_execute_plan_does(
    validated: DemoSet,  # noqa: F811
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
):
    """Every way of running a plan goes through the same check: deploy-directors, and the `restore`
    job launched from the Dagster UI with the `recovery` resource."""
    setup = make_setup(validated, tmp_path / "s")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    text = setup.plan_path.read_text()
    setup.plan_path.write_text(node_root_elsewhere(text, elsewhere))
    line = line_of(node_root_elsewhere(text, elsewhere), str(elsewhere))
    runs = run_count(database_url)

    deployed = run_cli("deploy-directors", "--config", str(setup.plan_path), "--workspace", str(workspace))
    assert deployed.exit_code != 0, deployed.output
    assert re.search(
        rf"recovery-plan\.yaml:{line}: node \S+: root .* is not the inventory's root", deployed.output
    )
    monkeypatch.setenv("OMNI_RECOVERY_PASSPHRASE", PASSPHRASE.decode())
    failure = failed_ui_launch(
        setup, workspace, DagsterInstance.ephemeral(), asset_selection=[restored_directors.key]
    )
    assert "is not the inventory's root" in failure, failure

    assert files_under(elsewhere) == {} and not (tmp_path / "s" / "infra").exists()
    assert run_count(database_url) == runs


def test_a_ui_launch_for_an_application_the_plan_does_not_have_opens_no_run(
    validated: DemoSet,  # noqa: F811
    tmp_path: Path,
    workspace: Path,  # noqa: F811
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
):
    """A backfill of a partition (an application) the plan lacks is refused as --applications is."""
    setup = make_setup(validated, tmp_path / "s")
    monkeypatch.setenv("OMNI_RECOVERY_PASSPHRASE", PASSPHRASE.decode())
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("applications", ["biling"])
    runs = run_count(database_url)

    failure = failed_ui_launch(
        setup, workspace, instance, asset_selection=[restored_applications.key], partition_key="biling"
    )

    assert "unknown application(s) biling" in failure, failure
    assert run_count(database_url) == runs and not (tmp_path / "s" / "infra").exists()
