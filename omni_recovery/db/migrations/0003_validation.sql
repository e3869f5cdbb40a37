-- Validation runs (shallow or deep) of a backup set and the problems each found.

CREATE TABLE omni.validation_runs (
    run_id        text        PRIMARY KEY,
    backup_set_id text        NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    deep          boolean     NOT NULL,
    passed        boolean,
    CHECK (finished_at IS NULL OR finished_at >= started_at),
    FOREIGN KEY (backup_set_id) REFERENCES omni.backup_sets (backup_set_id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX validation_runs_set_idx ON omni.validation_runs (backup_set_id, started_at);
COMMENT ON COLUMN omni.validation_runs.passed IS 'NULL while the run is unfinished';

CREATE TABLE omni.validation_problems (
    problem_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id     text NOT NULL REFERENCES omni.validation_runs (run_id) ON DELETE CASCADE,
    severity   text NOT NULL,
    check_name text NOT NULL,
    iso_name   text,
    path       text,
    expected   text,
    found      text,
    message    text NOT NULL
);
CREATE INDEX validation_problems_run_idx ON omni.validation_problems (run_id);
