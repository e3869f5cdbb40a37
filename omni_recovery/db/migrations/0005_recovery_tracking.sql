-- Recovery tracking: runs of a plan, each step's progress, and every file written and verified,
-- so that a killed run resumes without redoing what is already verified.

CREATE TABLE omni.recovery_runs (
    run_id      text        PRIMARY KEY,
    plan_id     text        NOT NULL REFERENCES omni.recovery_plans (plan_id),
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    status      text        NOT NULL,
    options     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    CHECK (finished_at IS NULL OR finished_at >= started_at)
);
CREATE INDEX recovery_runs_plan_idx ON omni.recovery_runs (plan_id, started_at);

CREATE TABLE omni.recovery_steps (
    run_id        text        NOT NULL REFERENCES omni.recovery_runs (run_id) ON DELETE CASCADE,
    step_id       text        NOT NULL,
    phase         text        NOT NULL,
    component_id  text,
    status        text        NOT NULL,
    attempts      integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    started_at    timestamptz,
    finished_at   timestamptz,
    bytes_written bigint      NOT NULL DEFAULT 0 CHECK (bytes_written >= 0),
    detail        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (run_id, step_id)
);
CREATE INDEX recovery_steps_status_idx ON omni.recovery_steps (run_id, status);

CREATE TABLE omni.restored_files (
    run_id      text        NOT NULL REFERENCES omni.recovery_runs (run_id) ON DELETE CASCADE,
    target      text        NOT NULL,
    path        text        NOT NULL,
    sha256      text,
    size        bigint      NOT NULL CHECK (size >= 0),
    verified_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, target, path)
);
COMMENT ON TABLE omni.restored_files IS 'Files written to a target and verified there; a resumed run skips them.';
