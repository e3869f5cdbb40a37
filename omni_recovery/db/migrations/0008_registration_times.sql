-- When each backup set was last registered (register-isos), kept apart from omni.backup_sets: the
-- catalog reloads every registered set's row (DELETE + COPY) whenever any set is registered, which
-- used to give every set the time of the latest registration. The trigger gives a reloaded row
-- its own set's registration time; a set never registered keeps the default (now()).

CREATE TABLE omni.set_registrations (
    backup_set_id text        PRIMARY KEY,
    registered_at timestamptz NOT NULL
);
COMMENT ON TABLE omni.set_registrations IS 'Time of the last register-isos of each backup set';

INSERT INTO omni.set_registrations (backup_set_id, registered_at)
    SELECT backup_set_id, registered_at FROM omni.backup_sets;

CREATE FUNCTION omni.keep_registration_time() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.registered_at := coalesce(
        (SELECT r.registered_at FROM omni.set_registrations r WHERE r.backup_set_id = NEW.backup_set_id),
        NEW.registered_at
    );
    RETURN NEW;
END;
$$;

CREATE TRIGGER backup_sets_keep_registration_time
    BEFORE INSERT OR UPDATE ON omni.backup_sets
    FOR EACH ROW EXECUTE FUNCTION omni.keep_registration_time();
