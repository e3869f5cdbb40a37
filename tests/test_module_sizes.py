"""The packages cut at their seams stay so: no module of restorer/, backup/, backupset/ or adapt/
runs over about 400 lines, and none has a header of more than 25 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "omni_recovery"
CUT = ("restorer", "backup", "backupset", "adapt")
MAX_LINES = 400
MAX_HEADER_LINES = 25


def modules() -> list[Path]:
    return sorted(path for package in CUT for path in (CORE / package).glob("*.py"))


def test_the_packages_hold_modules() -> None:
    names = {path.name for path in modules()}
    assert {"files.py", "writer.py", "isofs.py", "inventory.py"} <= names


@pytest.mark.parametrize("module", modules(), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_a_module_is_short_and_its_header_too(module: Path) -> None:
    text = module.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_LINES
    header = ast.get_docstring(ast.parse(text), clean=False) or ""
    assert len(header.splitlines()) <= MAX_HEADER_LINES
