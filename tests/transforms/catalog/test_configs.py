"""Configuration files become typed tables; a malformed file is refused by name."""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa
import pytest

from omni_recovery.backupset.reader import IsoReader, list_backup_set
from omni_recovery.errors import BackupSetError
from tests.catalog_fixtures import DemoSet
from transforms.configs import CONFIG_SCHEMAS, config_tables, is_config_path, whole_config_files


def _demo_documents(demo_set: DemoSet) -> list[tuple[str, str, bytes]]:
    docs = []
    for member in list_backup_set(str(demo_set.output)):
        with IsoReader(member.url) as reader:
            for entry in reader.manifest.files:
                if entry.type == "file" and is_config_path(
                    entry.path, encrypted=entry.encryption is not None
                ):
                    docs.append(("t1", entry.path, reader.verified_bytes(entry.path)))
    return docs


def test_demo_configurations_become_typed_tables(demo_set: DemoSet) -> None:
    tables = config_tables(_demo_documents(demo_set))
    for name, schema in CONFIG_SCHEMAS.items():
        if not name.startswith("orchestrator_db_") or name in (
            "orchestrator_db_columns",
            "orchestrator_db_rows",
        ):
            assert tables[name].schema == schema, name
    assert tables["directors"].num_rows == 3
    assert tables["orchestrators"].num_rows == 3
    assert tables["applications"].num_rows == 6
    assert set(tables["network_subnets"].column("name").to_pylist()) == {"management", "services", "storage"}
    containers = tables["application_containers"]
    assert containers.schema.field("ports").type == pa.list_(pa.string())
    assert ["8080"] in containers.column("ports").to_pylist()
    app_names = set(tables["applications"].column("name").to_pylist())
    for names, strengths in zip(
        tables["applications"].column("depends_on").to_pylist(),
        tables["applications"].column("depends_on_strength").to_pylist(),
        strict=True,
    ):
        assert set(names) <= app_names and set(strengths) <= {"hard", "soft"}
    roles = tables["orchestrator_db_roles"]
    assert roles.schema.field("builtin").type == pa.bool_()
    assert roles.num_rows > 0
    apps = tables["orchestrator_db_app_definitions"]
    assert apps.schema.field("revision").type == pa.int64()
    assert apps.schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    volumes = tables["volumes"]
    assert volumes.num_rows == 13 and volumes.column("size_gib").null_count == 0
    for table in tables.values():
        assert set(table.column("backup_set_id").to_pylist()) <= {"t1"}


def test_paths_that_are_not_configuration() -> None:
    assert is_config_path("data/applications/a/app.yaml")
    assert not is_config_path("data/applications/a/secrets.json", encrypted=True)
    assert not is_config_path("data/volumes/a/v/files/settings.yaml")
    assert not is_config_path("data/keys/data-key.json")
    assert not is_config_path("metadata/backup_info.yaml")


@pytest.mark.parametrize(
    ("path", "data", "expected"),
    [
        ("data/applications/a/app.yaml", b"name: [unclosed", "cannot be parsed"),
        ("data/applications/a/app.yaml", b"- a list", "must be a mapping"),
        ("data/network/routes.yaml", b"routes: {a: 1}", "must be a list"),
    ],
)
def test_malformed_configuration_is_refused_by_name(path: str, data: bytes, expected: str) -> None:
    with pytest.raises(BackupSetError) as caught:
        config_tables([("s", path, data)])
    assert expected in str(caught.value)
    assert path in str(caught.value)


ISO = "s_director-state_001.iso"


def _part_rows(logical: str, data: bytes, size: int) -> list[dict[str, Any]]:
    count = -(-len(data) // size)
    common = {"backup_set_id": "s", "iso_name": ISO, "component_id": "director:d1", "chunk_count": count}
    digest = hashlib.sha256(data).hexdigest()
    return [
        {
            **common,
            "path": f"{logical}.part-{i:05d}",
            "content": data[i * size : (i + 1) * size],
            "chunk_of": logical,
            "chunk_index": i,
            "logical_size": len(data),
            "logical_sha256": digest,
        }
        for i in range(count)
    ]


def test_whole_config_files_joins_parts_in_order_and_keeps_whole_files() -> None:
    state = b'{"vms": [' + b",".join(b'{"vm_id": "v%d"}' % i for i in range(50)) + b"]}"
    parts = _part_rows("data/directors/d1/state.json", state, 100)
    whole = {"backup_set_id": "s", "iso_name": "x.iso", "path": "data/network/dns.yaml", "component_id": None}
    rows = [*reversed(parts), {**whole, "content": b"a: 1", "chunk_of": None}]
    joined = {row["path"]: row for row in whole_config_files(rows)}
    assert set(joined) == {"data/directors/d1/state.json", "data/network/dns.yaml"}
    assert joined["data/directors/d1/state.json"]["content"] == state
    assert joined["data/directors/d1/state.json"]["iso_name"] == ISO
    assert joined["data/network/dns.yaml"] == {**whole, "content": b"a: 1"}
    assert whole_config_files(parts[1:]) == [], "left out until every part is registered"


def test_whole_config_files_refuses_parts_that_do_not_make_the_whole() -> None:
    parts = _part_rows("data/directors/d1/state.json", b"x" * 250, 100)
    parts[1]["content"] = b"y" * 100
    with pytest.raises(BackupSetError) as caught:
        whole_config_files(parts)
    assert (caught.value.iso, caught.value.path) == (
        "s_director-state_001.iso",
        "data/directors/d1/state.json",
    )
