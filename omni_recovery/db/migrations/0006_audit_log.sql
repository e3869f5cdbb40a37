-- The audit log of every operation. Append-only: UPDATE, DELETE and TRUNCATE are refused by triggers
-- (a superuser can still drop it; this guards against mistakes, not against an attacker).

CREATE TABLE omni.audit_log (
    id        bigserial   PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text        NOT NULL,
    operation text        NOT NULL,
    subject   text,
    detail    jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at_idx ON omni.audit_log (at);
CREATE INDEX audit_log_operation_idx ON omni.audit_log (operation, at);

CREATE FUNCTION omni.audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'omni.audit_log is append-only (% refused)', TG_OP;
END;
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON omni.audit_log
    FOR EACH ROW EXECUTE FUNCTION omni.audit_log_is_append_only();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON omni.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION omni.audit_log_is_append_only();
