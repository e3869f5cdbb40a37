"""The catalog's columns for format 1.1: each file's owner, hard link and whether it is sparse.

The manifest's JSON is read column-wise by catalog_tables; these are the fields it reads besides
(`OWNER_LINK_SPARSE_FIELDS`; xattrs stay in the manifest) and the columns they become in the
`files` table (`OWNER_LINK_SPARSE_COLUMNS`): uid, gid, owner_user, owner_group, hardlink (the first
name's path, on later names of one inode) and sparse (true when only data ranges are stored; the
holes are then logical_size - size bytes). So SQL answers "which files belong to uid 999" and
"how many bytes are holes" without opening an ISO.

The few rows that carry a hard link or sparse ranges are checked by the manifest reader's own rules
(`parse_attributes`, `sparse_problem`), so the catalog refuses what a reader refuses in owners,
links and ranges, naming the ISO and the path (xattrs are left to the reader, at restore).
Version-1 manifests have none of these fields: the columns are null, and sparse false.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from omni_recovery.backupset.attributes import parse_attributes, sparse_problem
from omni_recovery.backupset.layout import MANIFEST_PATH
from omni_recovery.errors import BackupSetError

OWNER_LINK_SPARSE_FIELDS: list[tuple[str, pa.DataType]] = [
    ("uid", pa.int64()),
    ("gid", pa.int64()),
    ("user", pa.string()),
    ("group", pa.string()),
    ("hardlink", pa.string()),
    ("sparse", pa.list_(pa.list_(pa.int64()))),
]
# The same facts in the catalog: user and group renamed (they are SQL keywords), sparse a flag.
_RENAMED = {"user": "owner_user", "group": "owner_group"}
OWNER_LINK_SPARSE_COLUMNS: list[tuple[str, pa.DataType]] = [
    *((_RENAMED.get(name, name), kind) for name, kind in OWNER_LINK_SPARSE_FIELDS if name != "sparse"),
    ("sparse", pa.bool_()),
]
_CHECKED = ("path", "type", "size", "uid", "gid", "user", "group", "hardlink", "sparse", "logical_size")


def owner_link_sparse_columns(raw: pa.Table) -> list[pa.ChunkedArray]:
    """The catalog columns of OWNER_LINK_SPARSE_COLUMNS from the manifest's entries `raw`."""
    names = ("uid", "gid", "user", "group", "hardlink")
    return [raw.column(name) for name in names] + [pc.is_valid(raw.column("sparse"))]


def check_links_and_sparse(raw: pa.Table, paths: list[str], iso: str) -> None:
    """Refuse what the manifest reader refuses in owners, hard links and sparse ranges."""
    for name in ("uid", "gid"):
        bad = pc.fill_null(pc.less(raw.column(name), 0), False)
        if pc.any(bad).as_py():
            raise BackupSetError(
                f"manifest entry: {name} must be an integer >= 0",
                iso=iso,
                path=paths[pc.index(bad, True).as_py()],
            )
    carrying = pc.or_(pc.is_valid(raw.column("hardlink")), pc.is_valid(raw.column("sparse")))
    rows = pc.indices_nonzero(carrying).to_pylist()
    if not rows:
        return
    columns = [*_CHECKED, "logical_sha256", "chunk_of", "encryption"]
    for row in raw.select(columns).take(pa.array(rows, pa.int64())).to_pylist():
        _check_row(row, iso)


def _check_row(row: dict[str, Any], iso: str) -> None:
    def fail(message: str) -> BackupSetError:
        return BackupSetError(f"manifest entry: {message}", iso=iso, path=row["path"] or MANIFEST_PATH)

    attributes = parse_attributes(row, fail, iso)
    if row["hardlink"] is not None and (row["hardlink"] == row["path"] or (row["type"] or "file") != "file"):
        raise fail("a hard link is a file entry naming the first name of its inode, not itself")
    if row["hardlink"] is not None and row["sparse"] is not None:
        raise fail("only a file's first name may be sparse")
    problem = sparse_problem(
        attributes, row["size"], split=row["chunk_of"] is not None, sealed=row["encryption"] is not None
    )
    if problem:
        raise fail(problem)
