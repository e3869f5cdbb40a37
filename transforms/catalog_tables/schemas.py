"""The catalog's tables and their explicit Arrow types.

Per ISO: `MANIFEST_SCHEMA` (one row per manifest entry), `DIRECTORY_RECORDS_SCHEMA` (one row per
directory record of the image), `BACKUP_INFO_SCHEMA` (one row), and the recovery index's tables
(`COMPONENTS_SCHEMA`, `DEPENDENCIES_SCHEMA`, `INDEX_FILES_SCHEMA`, `HARDWARE_SCHEMA`). Set-wide:
`FILES_SCHEMA` (every manifest entry with its extents in the ISO), `ISOS_SCHEMA` and
`BACKUP_SETS_SCHEMA`. Every catalog table has a `backup_set_id` column. `MANIFEST_JSON_SCHEMA` is
the shape `manifest.manifest_table` reads the manifest's JSON against.
"""

from __future__ import annotations

import pyarrow as pa

from transforms.catalog_fidelity import OWNER_LINK_SPARSE_COLUMNS, OWNER_LINK_SPARSE_FIELDS

TS = pa.timestamp("us", tz="UTC")
SHA256 = r"^[0-9a-fA-F]{64}$"

_ENCRYPTION = pa.struct(
    [
        ("alg", pa.string()),
        ("key_id", pa.string()),
        ("nonce", pa.string()),
        ("plaintext_sha256", pa.string()),
        ("plaintext_size", pa.int64()),
    ]
)
ENTRY_FIELDS = [
    ("path", pa.string()),
    ("type", pa.string()),
    ("size", pa.int64()),
    ("sha256", pa.string()),
    ("mode", pa.int64()),
    ("mtime", pa.string()),
    ("target", pa.string()),
    ("component", pa.string()),
    ("chunk_of", pa.string()),
    ("chunk_index", pa.int64()),
    ("chunk_count", pa.int64()),
    ("logical_size", pa.int64()),
    ("logical_sha256", pa.string()),
    ("encryption", _ENCRYPTION),
    *OWNER_LINK_SPARSE_FIELDS,
]
MANIFEST_JSON_SCHEMA = pa.schema(
    [
        ("format", pa.string()),
        ("backup_set_id", pa.string()),
        ("kind", pa.string()),
        ("sequence", pa.int64()),
        ("created_at", pa.string()),
        ("files", pa.list_(pa.struct(ENTRY_FIELDS))),
    ]
)

MANIFEST_SCHEMA = pa.schema(
    [
        ("backup_set_id", pa.string()),
        ("iso_name", pa.string()),
        ("path", pa.string()),
        ("type", pa.string()),
        ("size", pa.int64()),
        ("sha256", pa.string()),
        ("mode", pa.int32()),
        ("mtime", TS),
        ("target", pa.string()),
        ("component_id", pa.string()),
        ("chunk_of", pa.string()),
        ("chunk_index", pa.int32()),
        ("chunk_count", pa.int32()),
        ("logical_size", pa.int64()),
        ("logical_sha256", pa.string()),
        ("encrypted", pa.bool_()),
        ("encryption", pa.string()),  # the manifest's encryption object as JSON text
        *OWNER_LINK_SPARSE_COLUMNS,
    ]
)
"""One row per manifest entry of one ISO."""

DIRECTORY_RECORDS_SCHEMA = pa.schema(
    [
        ("iso_name", pa.string()),
        ("path", pa.string()),
        ("name", pa.string()),
        ("name_source", pa.string()),
        ("iso9660_name", pa.string()),
        ("type", pa.string()),
        ("size", pa.int64()),
        ("mode", pa.int32()),
        ("mtime", TS),
        ("extent_offset", pa.int64()),
        ("extent_length", pa.int64()),
        ("extent_count", pa.int32()),
        ("extents", pa.string()),  # JSON [[byte offset, length], ...]: every section, in file order
        ("symlink_target", pa.string()),
    ]
)
"""One row per directory record of one ISO (files, folders, symbolic links)."""

BACKUP_INFO_SCHEMA = pa.schema(
    [
        ("backup_set_id", pa.string()),
        ("iso_name", pa.string()),
        ("kind", pa.string()),
        ("sequence", pa.int32()),
        ("url", pa.string()),
        ("size_bytes", pa.int64()),
        ("file_count", pa.int32()),
        ("created_at", TS),
        ("omnicloud_version", pa.string()),
        ("source_environment", pa.string()),  # JSON
        ("iso_set", pa.string()),  # JSON list of {name, kind, sequence}
        ("encryption", pa.string()),  # JSON
        ("signing", pa.string()),  # JSON
        ("signer_key_id", pa.string()),
    ]
)
"""One row: backup_info.yaml of one ISO, with the ISO's name, kind, size and URL."""

COMPONENTS_SCHEMA = pa.schema(
    [
        ("backup_set_id", pa.string()),
        ("component_id", pa.string()),
        ("kind", pa.string()),
        ("name", pa.string()),
        ("parent_id", pa.string()),
        ("priority", pa.string()),
        ("iso_kind", pa.string()),
        ("attributes", pa.string()),  # JSON object
    ]
)
DEPENDENCIES_SCHEMA = pa.schema(
    [
        ("backup_set_id", pa.string()),
        ("component_id", pa.string()),
        ("depends_on_id", pa.string()),
        ("strength", pa.string()),
    ]
)
INDEX_FILES_SCHEMA = pa.schema(
    [("backup_set_id", pa.string()), ("path", pa.string()), ("component_id", pa.string())]
)
HARDWARE_SCHEMA = pa.schema(
    [
        ("backup_set_id", pa.string()),
        ("node_id", pa.string()),
        ("role", pa.string()),
        ("cpu_cores", pa.int32()),
        ("memory_mib", pa.int64()),
        ("disks", pa.string()),  # JSON array
        ("nics", pa.string()),  # JSON array
    ]
)

FILES_SCHEMA = pa.schema(
    [
        *(field for field in MANIFEST_SCHEMA if field.name != "encryption"),
        ("encryption", pa.string()),
        ("extent_offset", pa.int64()),
        ("extents", pa.string()),
    ]
)
"""The catalog's files: every manifest entry of every ISO, with its extents in the ISO."""

ISOS_SCHEMA = pa.schema(
    [
        ("backup_set_id", pa.string()),
        ("iso_name", pa.string()),
        ("kind", pa.string()),
        ("sequence", pa.int32()),
        ("size_bytes", pa.int64()),
        ("sha256", pa.string()),
        ("file_count", pa.int32()),
        ("url", pa.string()),
    ]
)
BACKUP_SETS_SCHEMA = pa.schema(
    [
        ("backup_set_id", pa.string()),
        ("created_at", TS),
        ("omnicloud_version", pa.string()),
        ("source_environment", pa.string()),  # JSON
        ("signer_key_id", pa.string()),
        ("iso_count", pa.int32()),
    ]
)
