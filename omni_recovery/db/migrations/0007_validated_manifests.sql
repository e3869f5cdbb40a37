-- Which exact manifests a validation run checked (backupset.reader.manifests_fingerprint), so that a
-- recovery relies only on a validation of the very ISOs it restores from. NULL for runs recorded
-- before this column existed, or when an ISO could not be read.

ALTER TABLE omni.validation_runs ADD COLUMN manifests_sha256 text;
COMMENT ON COLUMN omni.validation_runs.manifests_sha256 IS
    'sha256 over every ISO name and its manifest bytes; NULL when not every manifest was readable';
