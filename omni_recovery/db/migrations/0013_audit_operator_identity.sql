-- Who did each audited operation: the OS user and uid and the host of the process, the database role
-- (filled in by the server: current_user, so a client cannot name another), and the fingerprint of
-- the SSH key each host accepted (by host address). Rows written before this migration keep NULL
-- and '{}' there (their `actor` still names the OS user). UPDATE and DELETE stay refused (0006).

ALTER TABLE omni.audit_log
    ADD COLUMN os_user  text,
    ADD COLUMN os_uid   integer,
    ADD COLUMN host     text,
    ADD COLUMN db_role  text,
    ADD COLUMN ssh_keys jsonb NOT NULL DEFAULT '{}'::jsonb;

ALTER TABLE omni.audit_log ALTER COLUMN db_role SET DEFAULT current_user;

-- `status` and the report find a run's rows by subject (the run) and by detail's run_id (its steps).
CREATE INDEX audit_log_subject_idx ON omni.audit_log (subject);
CREATE INDEX audit_log_run_id_idx ON omni.audit_log ((detail->>'run_id'));
