"""An operator's edits and mistakes get the right first answer.

A plan edited into invalid YAML or with a `depends_on` naming a step that is not there is refused
with the file, the line and what is wrong, before the set, the inventory or the database are looked
for (wherever the edited copy lies). A forgotten OMNI_RECOVERY_WORKSPACE does not make a new empty
workspace behind the operator's back: `status` names the workspace it looked in and makes nothing;
`execute-plan` says when the workspace it uses is a new one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from omni_recovery.cli import main
from omni_recovery.plan.generate import generate, write_plan_files
from tests.backupset.conftest import DemoSet
from tests.builders import same_shaped_inventory

# (what the edit does, text replaced, replacement, what the refusal must say)
EDITS = [
    ("unclosed list", "depends_on: []", "depends_on: [", "not valid YAML"),
    ("unknown step", "depends_on: []", "depends_on: [director/no-such]", "unknown step 'director/no-such'"),
    ("cycle", "depends_on: []", "depends_on: [ring/demo-ring-1]", "cycle"),
    ("tab indentation", "\n    depends_on: []", "\n\tdepends_on: []", "not valid YAML"),
]


@pytest.fixture(scope="module")
def generated_plan(demo_set: DemoSet, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("plan")
    plan, _ = generate(str(demo_set.output), same_shaped_inventory(demo_set.env, folder), "basic")
    path = folder / "recovery-plan.yaml"
    write_plan_files(plan, path)
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize(("edit", "old", "new", "said"), EDITS, ids=[e[0] for e in EDITS])
@pytest.mark.parametrize("command", ["execute-plan", "deploy-directors"])
def test_a_broken_edit_is_refused_by_line_first(
    generated_plan: str, tmp_path: Path, command: str, edit: str, old: str, new: str, said: str
) -> None:
    assert old in generated_plan, edit
    edited = tmp_path / "edited-plan.yaml"  # a copy: no record of the set and inventory beside it
    edited.write_text(generated_plan.replace(old, new, 1), encoding="utf-8")
    line = generated_plan[: generated_plan.index(old) + 1].count("\n") + 1
    plan_option = "--plan" if command == "execute-plan" else "--config"
    result = CliRunner().invoke(
        main, [command, plan_option, str(edited)], env={"OMNI_RECOVERY_PASSPHRASE": "x"}
    )
    assert result.exit_code != 0
    assert f"{edited}:" in result.output and said in result.output, result.output
    named = [int(n) for n in re.findall(rf"{re.escape(str(edited))}:(\d+):", result.output)]
    assert any(abs(n - line) <= 6 for n in named), f"line {line} or its step's not named: {result.output}"
    assert "--inventory" not in result.output
    assert not (tmp_path / ".omni-recovery").exists(), "nothing is made for a plan refused"


def test_status_without_the_workspace_names_it_and_makes_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code != 0
    assert f"no recovery database in workspace {tmp_path / '.omni-recovery'}" in result.output
    assert "OMNI_RECOVERY_WORKSPACE" in result.output
    assert not (tmp_path / ".omni-recovery").exists()


def test_status_of_an_empty_database_says_where_it_looked(fresh_database_url: str) -> None:
    result = CliRunner().invoke(main, ["status"], env={"OMNI_RECOVERY_DATABASE_URL": fresh_database_url})
    assert result.exit_code == 0, result.output
    assert "no recovery run yet in the database of OMNI_RECOVERY_DATABASE_URL" in result.output


def test_execute_plan_says_when_its_workspace_is_new(
    generated_plan: str, tmp_path: Path, fresh_database_url: str
) -> None:
    plan = tmp_path / "recovery-plan.yaml"
    plan.write_text(generated_plan, encoding="utf-8")
    workspace = tmp_path / "forgotten"
    env = {"OMNI_RECOVERY_DATABASE_URL": fresh_database_url, "OMNI_RECOVERY_PASSPHRASE": "x"}
    result = CliRunner().invoke(
        main, ["execute-plan", "--plan", str(plan), "--workspace", str(workspace)], env=env
    )
    assert f"workspace {workspace}: new, made now" in result.output, result.output
