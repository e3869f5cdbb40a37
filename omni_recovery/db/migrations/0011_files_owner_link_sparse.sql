-- Format 1.1 (see docs/backup-format.md): each file's owner, hard link and sparse storage, so SQL
-- answers "which files belong to uid 999" and "how many bytes are holes" (logical_size - size of
-- the sparse rows). NULL for entries of version-1 sets (sparse: false).

ALTER TABLE omni.files
    ADD COLUMN uid         bigint  CHECK (uid >= 0),
    ADD COLUMN gid         bigint  CHECK (gid >= 0),
    ADD COLUMN owner_user  text,
    ADD COLUMN owner_group text,
    ADD COLUMN hardlink    text,
    ADD COLUMN sparse      boolean DEFAULT false;
COMMENT ON COLUMN omni.files.hardlink IS
    'on a later name of an inode: the path of its first name, whose stored bytes it shares (size 0 here)';
COMMENT ON COLUMN omni.files.sparse IS
    'only the data ranges are stored (size); the whole file is logical_size bytes, holes read as zeros';
CREATE INDEX files_uid ON omni.files (backup_set_id, uid);
