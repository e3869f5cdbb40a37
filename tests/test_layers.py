"""Layer rules a reader should not have to keep in memory: the import-linter contracts in
pyproject.toml hold (`python3 tasks.py test` also runs them first); only omni_recovery/cli imports
click."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("omni_recovery", "assets", "io_managers", "transforms", "pipelines")
CLI = ROOT / "omni_recovery" / "cli"


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


def test_the_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "0 broken" in result.stdout
