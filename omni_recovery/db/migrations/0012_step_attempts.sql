-- Every attempt of a recovery step, kept when the step runs again (retries, a resumed run), so the
-- report lists the earlier attempts of a step with their errors. recovery_steps keeps the latest.
-- An attempt whose finished_at is NULL was stopped by its process ending (killed, crashed).

CREATE TABLE omni.step_attempts (
    run_id      text        NOT NULL,
    step_id     text        NOT NULL,
    attempt     integer     NOT NULL CHECK (attempt >= 1),
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome     text,
    error       text,
    worker      text,
    PRIMARY KEY (run_id, step_id, attempt),
    FOREIGN KEY (run_id, step_id) REFERENCES omni.recovery_steps (run_id, step_id) ON DELETE CASCADE,
    CHECK (finished_at IS NULL OR finished_at >= started_at)
);
COMMENT ON COLUMN omni.step_attempts.worker IS
    'who ran the attempt: host:pid of the process by default, or the name of the worker that ran it';
