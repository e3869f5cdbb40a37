-- Recovery plans as generated (the YAML a person reads and may edit) and every adaptation made.

CREATE TABLE omni.recovery_plans (
    plan_id         text        PRIMARY KEY,
    backup_set_id   text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    adaptation_mode text        NOT NULL,
    plan_yaml       text        NOT NULL,
    plan_sha256     text        NOT NULL CHECK (plan_sha256 ~ '^[0-9a-f]{64}$'),
    FOREIGN KEY (backup_set_id) REFERENCES omni.backup_sets (backup_set_id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX recovery_plans_set_idx ON omni.recovery_plans (backup_set_id, created_at);

CREATE TABLE omni.adaptations (
    adaptation_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plan_id       text  NOT NULL REFERENCES omni.recovery_plans (plan_id) ON DELETE CASCADE,
    kind          text  NOT NULL,
    subject       text  NOT NULL,
    old_value     jsonb,
    new_value     jsonb,
    reason        text  NOT NULL DEFAULT ''
);
CREATE INDEX adaptations_plan_idx ON omni.adaptations (plan_id);
COMMENT ON COLUMN omni.adaptations.kind IS 'hardware, network, storage, scaling, rebalance, ...';
