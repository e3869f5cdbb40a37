"""Configuration files become typed tables; a malformed file is refused by name."""

from __future__ import annotations

import pyarrow as pa
import pytest

from omni_recovery.backupset.reader import IsoReader, list_backup_set
from omni_recovery.errors import BackupSetError
from tests.catalog_fixtures import DemoSet
from transforms.configs import CONFIG_SCHEMAS, config_tables, is_config_path


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
    assert tables["application_containers"].schema.field("ports").type == pa.list_(pa.int64())
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
        ("data/network/routes.yaml", b"routes: [{metric: lots}]", "wrong type"),
    ],
)
def test_malformed_configuration_is_refused_by_name(path: str, data: bytes, expected: str) -> None:
    with pytest.raises(BackupSetError) as caught:
        config_tables([("s", path, data)])
    assert expected in str(caught.value)
    if expected != "wrong type":
        assert path in str(caught.value)
