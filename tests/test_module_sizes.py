"""The modules cut at their seams stay so: no module of the project's packages runs over 400 lines
unless its header has a line starting "Kept whole:" saying why, none of restorer/, backup/,
backupset/ or adapt/, nor transforms/target_layout.py and transforms/layout/, does at all; and no
module's header runs over 25 lines."""

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
KEPT_WHOLE = "Kept whole:"


def modules() -> list[Path]:
    cut = [path for package in CUT for path in (CORE / package).glob("*.py")]
    layout = [ROOT / "transforms" / "target_layout.py", *(ROOT / "transforms" / "layout").glob("*.py")]
    return sorted(cut + layout)


def every_module() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def header(module: Path) -> str:
    return ast.get_docstring(ast.parse(module.read_text(encoding="utf-8")), clean=False) or ""


def header_lines(module: Path) -> int:
    return len(header(module).splitlines())


def line_count(module: Path) -> int:
    return len(module.read_text(encoding="utf-8").splitlines())


def says_why_it_is_kept_whole(module: Path) -> bool:
    return any(line.startswith(KEPT_WHOLE) for line in header(module).splitlines())


def test_the_packages_hold_modules() -> None:
    names = {path.name for path in modules()}
    assert {"files.py", "writer.py", "isofs.py", "inventory.py", "target_layout.py"} <= names
    assert len(every_module()) > len(modules())
    assert {path.parent.name for path in every_module()} >= set(PACKAGES)


@pytest.mark.parametrize("module", modules(), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_a_module_is_short_and_its_header_too(module: Path) -> None:
    assert line_count(module) <= MAX_LINES
    assert header_lines(module) <= MAX_HEADER_LINES


@pytest.mark.parametrize("module", every_module(), ids=lambda path: str(path.relative_to(ROOT)))
def test_no_module_header_runs_over_25_lines(module: Path) -> None:
    assert header_lines(module) <= MAX_HEADER_LINES, f"{module.relative_to(ROOT)}: header too long"


@pytest.mark.parametrize("module", every_module(), ids=lambda path: str(path.relative_to(ROOT)))
def test_a_long_module_says_why_it_is_kept_whole(module: Path) -> None:
    lines = line_count(module)
    assert lines <= MAX_LINES or says_why_it_is_kept_whole(module), (
        f"{module.relative_to(ROOT)}: {lines} lines, and no header line starting {KEPT_WHOLE!r}"
    )


def test_only_a_header_line_starting_kept_whole_counts(tmp_path: Path) -> None:
    long_body = "x = 1\n" * (MAX_LINES + 1)
    kept = tmp_path / "kept.py"
    kept.write_text(f'"""A module.\n\n{KEPT_WHOLE} one class.\n"""\n{long_body}', encoding="utf-8")
    mentioned = tmp_path / "mentioned.py"
    mentioned.write_text(
        f'"""A module, not {KEPT_WHOLE} at all.\n"""\n# {KEPT_WHOLE} no\n{long_body}', encoding="utf-8"
    )
    assert says_why_it_is_kept_whole(kept)
    assert not says_why_it_is_kept_whole(mentioned)
