-- Configuration store, state information and dependency graph, per backup set.
-- Catalog tables: reloaded by DELETE + COPY, deferred key to backup_sets only (see 0001).

CREATE TABLE omni.configurations (
    backup_set_id text  NOT NULL,
    component_id  text  NOT NULL,
    key           text  NOT NULL,
    value         jsonb NOT NULL,
    source_path   text,
    PRIMARY KEY (backup_set_id, component_id, key),
    FOREIGN KEY (backup_set_id) REFERENCES omni.backup_sets (backup_set_id) DEFERRABLE INITIALLY DEFERRED
);
COMMENT ON COLUMN omni.configurations.key IS 'dotted path of the setting within the component''s configuration';
COMMENT ON COLUMN omni.configurations.source_path IS 'file in the ISO the setting was read from';

CREATE TABLE omni.component_state (
    backup_set_id text        NOT NULL,
    component_id  text        NOT NULL,
    state         text        NOT NULL,
    detail        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (backup_set_id, component_id),
    FOREIGN KEY (backup_set_id) REFERENCES omni.backup_sets (backup_set_id) DEFERRABLE INITIALLY DEFERRED
);

-- No primary key: the index is untrusted input, and duplicate or self-referencing edges are for
-- validation to report (dependency checks), not for loading to refuse.
CREATE TABLE omni.dependencies (
    backup_set_id text NOT NULL,
    component_id  text NOT NULL,
    depends_on_id text NOT NULL,
    strength      text NOT NULL CHECK (strength IN ('hard', 'soft')),
    FOREIGN KEY (backup_set_id) REFERENCES omni.backup_sets (backup_set_id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX dependencies_component_idx ON omni.dependencies (backup_set_id, component_id);
CREATE INDEX dependencies_reverse_idx ON omni.dependencies (backup_set_id, depends_on_id);
