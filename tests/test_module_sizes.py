"""The modules cut at their seams stay so: no module of restorer/, backup/, backupset/ or adapt/, nor
transforms/target_layout.py and transforms/layout/, runs over about 400 lines; and no module of the
project's packages has a header of more than 25 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "omni_recovery"
CUT = ("restorer", "backup", "backupset", "adapt")
PACKAGES = ("omni_recovery", "assets", "io_managers", "pipelines", "transforms")
MAX_LINES = 400
MAX_HEADER_LINES = 25


def modules() -> list[Path]:
    cut = [path for package in CUT for path in (CORE / package).glob("*.py")]
    layout = [ROOT / "transforms" / "target_layout.py", *(ROOT / "transforms" / "layout").glob("*.py")]
    return sorted(cut + layout)


def every_module() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def header_lines(module: Path) -> int:
    header = ast.get_docstring(ast.parse(module.read_text(encoding="utf-8")), clean=False) or ""
    return len(header.splitlines())


def test_the_packages_hold_modules() -> None:
    names = {path.name for path in modules()}
    assert {"files.py", "writer.py", "isofs.py", "inventory.py", "target_layout.py"} <= names
    assert len(every_module()) > len(modules())
    assert {path.parent.name for path in every_module()} >= set(PACKAGES)


@pytest.mark.parametrize("module", modules(), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_a_module_is_short_and_its_header_too(module: Path) -> None:
    assert len(module.read_text(encoding="utf-8").splitlines()) <= MAX_LINES
    assert header_lines(module) <= MAX_HEADER_LINES


@pytest.mark.parametrize("module", every_module(), ids=lambda path: str(path.relative_to(ROOT)))
def test_no_module_header_runs_over_25_lines(module: Path) -> None:
    assert header_lines(module) <= MAX_HEADER_LINES, f"{module.relative_to(ROOT)}: header too long"
