"""The backup's image builder: owners in Rock Ridge, at a cost that grows with the entries only."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pycdlib
import pytest
from pycdlib.dr import DirectoryRecord

from omni_recovery.backup.isobuild import IsoBuilder


@pytest.mark.parametrize("files", [3, 300])
def test_owners_reach_the_image_and_the_layout_is_computed_once_however_many_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: int
) -> None:
    """pycdlib lays out every extent again before a lookup that follows an addition: setting each
    owner as its file is added did that once per file (time growing with the square of the files)."""
    layouts = 0
    original = pycdlib.PyCdlib._reshuffle_extents

    def counted(self: pycdlib.PyCdlib) -> Any:
        nonlocal layouts
        layouts += 1
        return original(self)

    monkeypatch.setattr(pycdlib.PyCdlib, "_reshuffle_extents", counted)
    builder = IsoBuilder("OWNERS")
    builder.add_directory("data", 0o40750)
    builder.set_owner("data", 7, 8)
    for i in range(files):
        builder.add_bytes(f"data/f{i}", b"x" * i, 0o100640)
        builder.set_owner(f"data/f{i}", 1000 + i, 2000 + i, links=1)
    image = tmp_path / "owners.iso"
    try:
        with image.open("wb") as out:
            builder.write(out)
    finally:
        builder.close()
    assert layouts <= 2, f"the layout was computed {layouts} times for {files} files"

    iso = pycdlib.PyCdlib()
    iso.open(str(image))
    try:
        owners = {name: _owner(iso, f"/{name}") for name in ["data", *(f"data/f{i}" for i in range(files))]}
    finally:
        iso.close()
    assert owners == {"data": (7, 8), **{f"data/f{i}": (1000 + i, 2000 + i) for i in range(files)}}


def _owner(iso: pycdlib.PyCdlib, rr_path: str) -> tuple[int, int]:
    record = cast(DirectoryRecord, iso.get_record(rr_path=rr_path))
    assert record.rock_ridge is not None and record.rock_ridge.dr_entries.px_record is not None
    px = record.rock_ridge.dr_entries.px_record
    return px.posix_user_id, px.posix_group_id
