"""Layer rules a reader should not have to keep in memory: the import-linter contracts in
pyproject.toml hold (`python3 tasks.py test` also runs them first); only omni_recovery/cli imports
click."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("omni_recovery", "assets", "io_managers", "transforms", "pipelines")
CLI = ROOT / "omni_recovery" / "cli"
STAGE_CONTRACT = "the stage packages of the core are layered in the flow's order"
UTILITIES_CONTRACT = "the shared utilities at the core's root import no stage package"


def imported_modules(source: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function, by absolute name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def modules_importing(top: str) -> list[str]:
    found = []
    for package in PACKAGES:
        for source in sorted((ROOT / package).rglob("*.py")):
            if any(name == top or name.startswith(f"{top}.") for name in imported_modules(source)):
                found.append(source.relative_to(ROOT).as_posix())
    return found


def test_imported_modules_sees_every_form_of_import(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import click\nfrom click.testing import CliRunner\ndef f():\n    import yaml\n")
    assert imported_modules(source) == {"click", "click.testing", "yaml"}


def test_only_the_command_line_imports_click() -> None:
    importing = modules_importing("click")
    assert importing, "the command line itself imports click; finding none means the scan is broken"
    outside = [path for path in importing if not (ROOT / path).is_relative_to(CLI)]
    assert outside == []


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    return subprocess.run([str(lint_imports), "--no-cache"], cwd=root, capture_output=True, text=True)


def test_the_import_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "0 broken" in result.stdout


def contract(name: str) -> dict[str, list[str]]:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (found,) = [c for c in contracts if c["name"].startswith(name)]
    return found


def test_every_package_of_the_core_is_placed_in_the_stage_layers() -> None:
    packages = {path.parent.name for path in (ROOT / "omni_recovery").glob("*/__init__.py")}
    layered = [name.strip() for layer in contract(STAGE_CONTRACT)["layers"] for name in layer.split("|")]
    assert "execute" in packages and "validate" in packages
    assert sorted(packages) == sorted(layered)
    assert sorted(contract(UTILITIES_CONTRACT)["forbidden_modules"]) == sorted(
        f"omni_recovery.{name}" for name in packages
    )


def test_every_loose_module_of_the_core_is_a_shared_utility() -> None:
    loose = {path.stem for path in (ROOT / "omni_recovery").glob("*.py")} - {"__init__"}
    assert "settings" in loose
    assert sorted(contract(UTILITIES_CONTRACT)["source_modules"]) == sorted(
        f"omni_recovery.{name}" for name in loose
    )


@pytest.mark.parametrize(
    ("importer", "imported", "broken_contract"),
    [
        ("validate/problems.py", "omni_recovery.plan.generate", STAGE_CONTRACT),  # a later stage
        ("validate/problems.py", "omni_recovery.register.registered_sets", STAGE_CONTRACT),  # a sibling
        ("backupset/layout.py", "omni_recovery.backup.writer", STAGE_CONTRACT),  # the format, its writer
        ("urls.py", "omni_recovery.backupset.layout", UTILITIES_CONTRACT),  # a utility, a stage
    ],
)
def test_the_layers_refuse_an_import_against_the_flow(
    tmp_path: Path, importer: str, imported: str, broken_contract: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with (tmp_path / "omni_recovery" / importer).open("a", encoding="utf-8") as source:
        source.write(f"\nimport {imported}  # noqa: E402\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert broken_contract in broken and imported in broken, result.stdout[-4000:]
