-- Component registry: the catalog of a backup set, one set beside another (keyed by backup_set_id).
--
-- Catalog tables are reloaded per backup set (or per ISO) by DELETE + COPY in one transaction, so
-- they carry no foreign keys among themselves (a set's files may be loaded before its components,
-- and dangling references are what validation reports, not what loading refuses). They do refer to
-- backup_sets through DEFERRABLE INITIALLY DEFERRED keys without cascade: the check runs at commit,
-- so the backup_sets row may be written before, after or in the same transaction as its children,
-- and deleting a set whose catalog rows remain fails loudly instead of silently emptying it.
-- To remove a set: delete its rows from every child table, then from backup_sets.

CREATE TABLE omni.backup_sets (
    backup_set_id      text        PRIMARY KEY CHECK (backup_set_id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    created_at         timestamptz NOT NULL,
    omnicloud_version  text        NOT NULL,
    source_environment jsonb       NOT NULL DEFAULT '{}'::jsonb,
    registered_at      timestamptz NOT NULL DEFAULT now(),
    signer_key_id      text,
    iso_count          integer     NOT NULL CHECK (iso_count > 0)
);
COMMENT ON TABLE omni.backup_sets IS 'One row per registered backup set (from backup_info.yaml).';
COMMENT ON COLUMN omni.backup_sets.signer_key_id IS 'hex sha256 of the raw Ed25519 public key that signed the set';

CREATE TABLE omni.isos (
    backup_set_id text        NOT NULL,
    iso_name      text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('system-core', 'director-state', 'orchestrator-state',
                                                       'volume-data', 'application-definition',
                                                       'network-configuration')),
    sequence      integer     NOT NULL CHECK (sequence >= 1),
    size_bytes    bigint      NOT NULL CHECK (size_bytes >= 0),
    sha256        text        CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    file_count    integer     NOT NULL CHECK (file_count >= 0),
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (backup_set_id, iso_name),
    UNIQUE (backup_set_id, kind, sequence),
    FOREIGN KEY (backup_set_id) REFERENCES omni.backup_sets (backup_set_id) DEFERRABLE INITIALLY DEFERRED
);
COMMENT ON COLUMN omni.isos.sha256 IS 'sha256 of the whole ISO file; NULL until a deep validation hashed it';

CREATE TABLE omni.components (
    backup_set_id text  NOT NULL,
    component_id  text  NOT NULL,
    kind          text  NOT NULL CHECK (kind IN ('director', 'orchestrator', 'volume', 'application', 'service',
                                                 'network', 'system')),
    name          text  NOT NULL,
    parent_id     text,
    priority      text  CHECK (priority IN ('critical', 'standard', 'low')),
    iso_kind      text  NOT NULL,
    attributes    jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (backup_set_id, component_id),
    FOREIGN KEY (backup_set_id) REFERENCES omni.backup_sets (backup_set_id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX components_kind_idx ON omni.components (backup_set_id, kind);
CREATE INDEX components_parent_idx ON omni.components (backup_set_id, parent_id);

CREATE TABLE omni.files (
    backup_set_id  text    NOT NULL,
    iso_name       text    NOT NULL,
    path           text    NOT NULL,
    type           text    NOT NULL DEFAULT 'file' CHECK (type IN ('file', 'dir', 'symlink')),
    size           bigint  NOT NULL DEFAULT 0 CHECK (size >= 0),
    sha256         text,
    mode           integer,
    mtime          timestamptz,
    target         text,
    component_id   text,
    extent_offset  bigint  CHECK (extent_offset >= 0),
    chunk_of       text,
    chunk_index    integer CHECK (chunk_index >= 0),
    chunk_count    integer CHECK (chunk_count >= 1),
    logical_size   bigint  CHECK (logical_size >= 0),
    logical_sha256 text,
    encrypted      boolean NOT NULL DEFAULT false,
    encryption     jsonb,
    PRIMARY KEY (backup_set_id, iso_name, path),
    CHECK ((chunk_of IS NULL) = (chunk_index IS NULL) AND (chunk_of IS NULL) = (chunk_count IS NULL)),
    FOREIGN KEY (backup_set_id) REFERENCES omni.backup_sets (backup_set_id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX files_path_idx ON omni.files (backup_set_id, path);
CREATE INDEX files_component_idx ON omni.files (backup_set_id, component_id);
CREATE INDEX files_chunk_of_idx ON omni.files (backup_set_id, chunk_of) WHERE chunk_of IS NOT NULL;
COMMENT ON TABLE omni.files IS 'Every manifest entry of every ISO, with its place in the image.';
COMMENT ON COLUMN omni.files.extent_offset IS 'byte offset of the file''s extent in the ISO image';
COMMENT ON COLUMN omni.files.target IS 'symlink target (type = symlink)';
COMMENT ON COLUMN omni.files.encryption IS 'the manifest''s encryption object (alg, key_id, nonce, plaintext_sha256, plaintext_size)';

CREATE TABLE omni.hardware (
    backup_set_id text    NOT NULL,
    node_id       text    NOT NULL,
    role          text    NOT NULL,
    cpu_cores     integer NOT NULL CHECK (cpu_cores >= 0),
    memory_mib    bigint  NOT NULL CHECK (memory_mib >= 0),
    disks         jsonb   NOT NULL DEFAULT '[]'::jsonb,
    nics          jsonb   NOT NULL DEFAULT '[]'::jsonb,
    PRIMARY KEY (backup_set_id, node_id),
    FOREIGN KEY (backup_set_id) REFERENCES omni.backup_sets (backup_set_id) DEFERRABLE INITIALLY DEFERRED
);
COMMENT ON TABLE omni.hardware IS 'The original nodes of the backed-up environment.';
