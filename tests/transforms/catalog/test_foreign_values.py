"""Sets written by other tools: the catalog accepts whatever the reader accepts, and configuration
values of an unexpected type land in their tables instead of failing the registration."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
import yaml

from omni_recovery.backupset.manifest import BackupInfo, IsoSetMember, parse_manifest
from tests.transforms.catalog.test_catalog_tables import ISO, manifest_bytes
from transforms import catalog_tables as ct
from transforms.configs import config_tables

UPPER = "AB" * 32
WHEN = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def _rows(files: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["path"]: row for row in ct.manifest_table(manifest_bytes(files), iso=ISO).to_pylist()}


def test_uppercase_digests_are_stored_lowercase_like_the_reader() -> None:
    encryption = {
        "alg": "AES-256-GCM",
        "key_id": "k1",
        "nonce": "AAAAAAAAAAAAAAAA",
        "plaintext_sha256": UPPER,
        "plaintext_size": 2,
    }
    files = [
        {"path": "data/volumes/a/v/files/x", "size": 3, "sha256": UPPER, "mode": 33188},
        {
            "path": "data/volumes/a/v/files/big.part-00000",
            "size": 3,
            "sha256": UPPER,
            "mode": 33188,
            "chunk_of": "data/volumes/a/v/files/big",
            "chunk_index": 0,
            "chunk_count": 1,
            "logical_size": 3,
            "logical_sha256": UPPER,
        },
        {"path": "data/applications/a/secrets.json", "size": 18, "sha256": UPPER, "encryption": encryption},
    ]
    rows = _rows(files)
    reader = {e.path: e for e in parse_manifest(manifest_bytes(files), iso=ISO).files}
    for path, row in rows.items():
        assert row["sha256"] == reader[path].sha256 == UPPER.lower()
    part = rows["data/volumes/a/v/files/big.part-00000"]
    assert part["logical_sha256"] == UPPER.lower()
    sealed = json.loads(rows["data/applications/a/secrets.json"]["encryption"])
    assert sealed["plaintext_sha256"] == UPPER.lower()


@pytest.mark.parametrize("absent", [{}, {"mode": None}], ids=["missing", "null"])
def test_an_entry_without_mode_takes_the_readers_default_for_its_type(absent: dict[str, Any]) -> None:
    files = [
        {"path": "data/volumes/a/v/files/x", "size": 3, "sha256": "a" * 64, **absent},
        {"path": "data/volumes/a/v/files/d", "type": "dir", "size": 0, **absent},
        {"path": "data/volumes/a/v/files/l", "type": "symlink", "size": 0, "target": "x", **absent},
    ]
    rows = _rows(files)
    reader = {e.path: e.mode for e in parse_manifest(manifest_bytes(files), iso=ISO).files}
    assert {path: row["mode"] for path, row in rows.items()} == reader
    assert reader == {
        "data/volumes/a/v/files/x": 0o100644,
        "data/volumes/a/v/files/d": 0o40755,
        "data/volumes/a/v/files/l": 0o120777,
    }


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-20T02:00:00Z",
        "2026-11-20t02:00:00z",
        "2026-11-20t02:00:00Z",
        "2026-11-20T03:00:00+01:00",
    ],
)
def test_rfc3339_times_with_lowercase_separators(text: str) -> None:
    file = {"path": "data/volumes/a/v/files/x", "size": 3, "sha256": "a" * 64, "mode": 33188, "mtime": text}
    assert _rows([file])["data/volumes/a/v/files/x"]["mtime"] == WHEN


def test_backup_info_created_at_with_lowercase_separators() -> None:
    info = BackupInfo(
        backup_set_id="t9",
        created_at="2026-11-20t02:00:00z",
        omnicloud_version="9",
        source_environment={},
        iso_set=[IsoSetMember(ISO, "volume-data", 1)],
        encryption={},
        signing={},
    )
    table = ct.backup_info_table(
        info, iso=ISO, kind="volume-data", sequence=1, url="file:///x", size_bytes=1, file_count=1
    )
    assert table.column("created_at")[0].as_py() == WHEN


def _tables(files: dict[str, Any]) -> dict[str, pa.Table]:
    docs = []
    for path, doc in files.items():
        data = json.dumps(doc) if path.endswith(".json") else yaml.safe_dump(doc)
        docs.append(("s", path, data.encode()))
    return config_tables(docs)


def test_ports_of_any_spelling_are_text() -> None:
    app = {"name": "a", "containers": [{"name": "web", "ports": ["8080/tcp", 9090, "80:8080"]}]}
    tables = _tables(
        {
            "data/applications/a/app.yaml": app,
            "data/services/dns/service.yaml": {"name": "dns", "ports": 53},
            "data/network/connectivity.yaml": {"links": [{"from": "a", "to": "b", "ports": ["443/tcp"]}]},
        }
    )
    assert tables["application_containers"].column("ports").to_pylist() == [["8080/tcp", "9090", "80:8080"]]
    assert tables["services"].column("ports").to_pylist() == [["53"]]
    assert tables["network_links"].column("ports").to_pylist() == [["443/tcp"]]


def test_depends_on_as_names_and_as_mappings() -> None:
    tables = _tables(
        {
            "data/applications/a/app.yaml": {"name": "a", "depends_on": ["b", "c"]},
            "data/applications/d/app.yaml": {
                "name": "d",
                "depends_on": [
                    {"app": "a", "strength": "hard"},
                    {"app": "b"},
                    {"name": "c", "strength": "soft"},
                ],
            },
            "data/applications/e/app.yaml": {
                "name": "e",
                "depends_on": [{"strength": "soft"}, {"f": "soft"}],
            },
            "data/services/api/service.yaml": {"name": "api", "depends_on": ["service:auth"]},
        }
    )
    apps = {row["name"]: row for row in tables["applications"].to_pylist()}
    assert (apps["a"]["depends_on"], apps["a"]["depends_on_strength"]) == (["b", "c"], ["hard", "hard"])
    assert (apps["d"]["depends_on"], apps["d"]["depends_on_strength"]) == (
        ["a", "b", "c"],
        ["hard", "hard", "soft"],
    )
    assert (apps["e"]["depends_on"], apps["e"]["depends_on_strength"]) == (["f"], ["soft"]), (
        "read as the planner reads it: a mapping naming nothing is skipped, {name: strength} understood"
    )
    assert tables["services"].column("depends_on").to_pylist() == [["auth"]]


def test_values_that_do_not_fit_their_column_become_null_or_text() -> None:
    state = {"vms": [{"vm_id": "v1", "cpu": "two", "memory_mib": 4096.0}], "history": [{"at": "yesterday"}]}
    tables = _tables(
        {
            "data/network/routes.yaml": {"routes": [{"destination": "0.0.0.0/0", "metric": "lots"}]},
            "data/directors/d1/state.json": state,
            "data/directors/d1/config.yaml": {"addresses": "10.0.0.1", "ring_peers": [1, {"id": "d2"}]},
        }
    )
    assert tables["network_routes"].column("metric").to_pylist() == [None]
    vm = tables["director_vms"].to_pylist()[0]
    assert (vm["cpu"], vm["memory_mib"]) == (None, 4096)
    assert tables["director_history"].column("at").to_pylist() == [None]
    director = tables["directors"].to_pylist()[0]
    assert director["management_address"] is None
    assert director["ring_peers"] == ["1", '{"id":"d2"}']


def _orchestrator(schema: Any) -> dict[str, pa.Table]:
    rows = "\n".join(
        json.dumps(r) for r in ({"id": 1, "name": "x", "builtin": True}, {"id": 2, "extra": [1]})
    )
    docs = [("s", "data/orchestrators/o1/db/roles.jsonl", rows.encode())]
    if schema is not None:
        docs.append(("s", "data/orchestrators/o1/db/schema.json", json.dumps(schema).encode()))
    return config_tables(docs)


@pytest.mark.parametrize(
    "schema",
    [
        None,
        ["roles"],
        {"roles": {"id": "integer"}},
        {"tables": ["roles"]},
        {"tables": {"roles": {"columns": "id integer"}}},
    ],
    ids=["absent", "a list", "no tables key", "tables of names", "columns as text"],
)
def test_a_schema_of_another_shape_is_ignored_and_columns_are_text(schema: Any) -> None:
    tables = _orchestrator(schema)
    roles = tables["orchestrator_db_roles"]
    assert roles.schema.names == ["backup_set_id", "orchestrator_id", "id", "name", "builtin", "extra"]
    assert all(roles.schema.field(n).type == pa.string() for n in roles.schema.names)
    assert roles.column("id").to_pylist() == ["1", "2"]
    assert roles.column("extra").to_pylist() == [None, "[1]"]
    assert tables["orchestrator_db_columns"].num_rows == 0


def test_a_schema_given_as_lists_types_its_columns() -> None:
    schema = {
        "tables": [
            {
                "name": "roles",
                "columns": [{"name": "id", "type": "INTEGER"}, {"name": "builtin", "type": "boolean"}],
            }
        ]
    }
    tables = _orchestrator(schema)
    roles = tables["orchestrator_db_roles"]
    assert roles.schema.field("id").type == pa.int64()
    assert roles.schema.field("builtin").type == pa.bool_()
    assert roles.schema.field("name").type == pa.string(), "undeclared columns are text"
    assert roles.column("builtin").to_pylist() == [True, None]
    columns = tables["orchestrator_db_columns"].to_pylist()
    assert [(c["column_name"], c["column_type"]) for c in columns] == [
        ("id", "INTEGER"),
        ("builtin", "boolean"),
    ]


def test_a_typed_database_value_of_another_type_is_null() -> None:
    schema = {"tables": {"roles": {"columns": {"id": "integer", "name": "timestamp", "builtin": "text"}}}}
    roles = _orchestrator(schema)["orchestrator_db_roles"]
    assert roles.column("id").to_pylist() == [1, 2]
    assert roles.column("name").to_pylist() == [None, None]
    assert roles.column("builtin").to_pylist() == ["true", None]
