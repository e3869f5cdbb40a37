-- Practice: recovery drills and the rotating deep verification of backup sets.

CREATE TABLE omni.drills (
    drill_id          text        PRIMARY KEY,
    backup_set_id     text,
    location          text        NOT NULL,
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz NOT NULL,
    passed            boolean     NOT NULL,
    failed_stage      text,
    error             text,
    durations         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    bytes_restored    bigint      NOT NULL DEFAULT 0,
    projected_seconds double precision,
    report            text,
    kept_scratch      text,
    CHECK (finished_at >= started_at),
    CHECK (passed = (failed_stage IS NULL))
);
CREATE INDEX drills_set_idx ON omni.drills (backup_set_id, started_at);
COMMENT ON COLUMN omni.drills.durations IS 'stage name → seconds (register, validate, plan, execute, compare, report)';
COMMENT ON COLUMN omni.drills.kept_scratch IS 'the scratch folder left in place by --keep, else NULL';

-- A deep validation of one slice (slice_index of slice_count) of a set's stored bytes. Such a run
-- is stored in validation_runs with deep = false: only a whole deep validation lets a recovery start.
CREATE TABLE omni.verification_slices (
    run_id           text        PRIMARY KEY REFERENCES omni.validation_runs (run_id) ON DELETE CASCADE,
    backup_set_id    text        NOT NULL,
    manifests_sha256 text,
    slice_index      integer     NOT NULL CHECK (slice_index >= 1),
    slice_count      integer     NOT NULL CHECK (slice_count >= 1 AND slice_index <= slice_count),
    slice_bytes      bigint      NOT NULL CHECK (slice_bytes >= 0),
    set_bytes        bigint      NOT NULL CHECK (set_bytes >= slice_bytes),
    passed           boolean     NOT NULL,
    verified_at      timestamptz NOT NULL
);
CREATE INDEX verification_slices_set_idx ON omni.verification_slices (backup_set_id, slice_count, verified_at);
